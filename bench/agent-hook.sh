#!/usr/bin/env bash
# What concur's hooks add to a tool call inside the real Claude Code (not a payload fed to
# `concur hook` by hand): one `claude -p` session replays N Write calls from the scripted model
# server (tests/agents/model); the server stamps each model request, so the gap between two
# requests is one whole tool call as Claude Code runs it (tool + hooks + its own bookkeeping).
# Three kinds of run, alternating, in the same invocation: without hooks ("plain"); with a
# PreToolUse hook that only reads its payload (`cat >/dev/null`, same matcher: what Claude Code's
# own hook machinery costs, "nullhook"); with the hooks of `concur hook install --agent claude`
# while 1,000 reservations are held in the repository ("hooked").
# Prints the median and mean gap of each run and the differences per call.
# Usage: bench/agent-hook.sh   (N=200 ROUNDS=3; builds the release binary; CONCUR_BIN=path skips
#        that; the CLI comes from scripts/agents)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-200}"
ROUNDS="${ROUNDS:-3}"
if [ -z "${CONCUR_BIN:-}" ]; then cargo build --release --quiet; fi
bin="${CONCUR_BIN:-$PWD/target/release/concur}"
cache="$(scripts/agents)"
claude="$cache/claude-code-2.1.328/node_modules/.bin/claude"
server="$PWD/tests/agents/model"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/repo/.git" "$work/repo/src"
ln -s "$bin" "$work/bin/concur"
repo="$work/repo"
export PATH="$work/bin:$PATH"

# 1,000 reservations held by 20 sessions (45 files and 5 globs each)
export CONCUR_HOME="$work/home"
for s in $(seq 1 20); do
  args=()
  for f in $(seq 1 45); do args+=("src/s$s/file$f.rs"); done
  for g in $(seq 1 5); do args+=("src/s$s/gen$g/**"); done
  (cd "$repo" && concur reserve --session "sess-$s" "${args[@]}" >/dev/null)
done
test "$(cd "$repo" && concur reservations --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["reservations"]))')" = 1000

# one session per run, N Write calls of files nobody reserved, then a final answer
python3 - "$N" "$repo" "$ROUNDS" > "$work/script.json" <<'PY'
import json, sys
n, repo, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
turns = lambda tag: [{"calls": [{"name": "Write", "input": {
    "file_path": "%s/out/%s-%d.txt" % (repo, tag, i), "content": "x\n"}}]} for i in range(n)]
print(json.dumps({"%s%d" % (k, r): turns("%s%d" % (k, r))
                  for r in range(rounds) for k in ("plain", "nullhook", "hooked")}))
PY
coproc SRV { PYTHONDONTWRITEBYTECODE=1 python3 "$server" "$work/script.json" 1800; }
read -r port <&"${SRV[0]}"

run() { # session, HOME
  env -i PATH="$PATH" HOME="$2" CONCUR_HOME="$CONCUR_HOME" LANG=C.UTF-8 \
    ANTHROPIC_BASE_URL="http://127.0.0.1:$port/$1" ANTHROPIC_API_KEY=scripted \
    DISABLE_AUTOUPDATER=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
    bash -c 'cd "$0" && exec "$1" -p "follow the script" --permission-mode acceptEdits --allowedTools Bash,Read,Write,Edit' \
    "$repo" "$claude" </dev/null >/dev/null
}
mkdir -p "$work/plain-home" "$work/nullhook-home/.claude" "$work/hooked-home/.claude"
HOME="$work/hooked-home" concur hook install --agent claude --settings "$work/hooked-home/.claude/settings.json" >/dev/null
matcher="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hooks"]["PreToolUse"][0]["matcher"])' "$work/hooked-home/.claude/settings.json")"
printf '{"hooks":{"PreToolUse":[{"matcher":"%s","hooks":[{"type":"command","command":"cat >/dev/null","timeout":10}]}]}}\n' \
  "$matcher" > "$work/nullhook-home/.claude/settings.json"
for r in $(seq 0 $((ROUNDS - 1))); do
  for k in plain nullhook hooked; do run "$k$r" "$work/$k-home"; done
done
for r in $(seq 0 $((ROUNDS - 1))); do
  for k in plain nullhook hooked; do
    curl -s "http://127.0.0.1:$port/_ctl/log/$k$r" > "$work/$k$r.json"
  done
done
test "$(cd "$repo" && concur reservations --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["reservations"]))')" = 1000
python3 - "$work" "$ROUNDS" "$N" <<'PY'
import json, statistics, sys
work, rounds, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def gaps(name):
    t = [r["t"] for r in json.load(open("%s/%s.json" % (work, name))) if "t" in r]
    assert len(t) == n + 1, (name, len(t))
    return [(b - a) * 1000 for a, b in zip(t, t[1:])]
kinds = ("plain", "nullhook", "hooked")
allg = {k: [] for k in kinds}
print("run         median ms/call  mean ms/call")
for r in range(rounds):
    for k in kinds:
        g = gaps("%s%d" % (k, r))
        allg[k] += g
        print("%-10s  %14.2f  %12.2f" % (k + str(r), statistics.median(g), statistics.mean(g)))
mp, mn, mh = (statistics.median(allg[k]) for k in kinds)
print("all %d calls of each kind, medians: plain %.2f ms, nullhook %.2f ms, hooked %.2f ms"
      % (len(allg["plain"]), mp, mn, mh))
print("concur's hooks add %.2f ms per call over no hooks, %.2f ms over a hook that does nothing"
      % (mh - mp, mh - mn))
PY
