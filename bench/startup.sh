#!/usr/bin/env bash
# Start-up cost of the concur binary, the default build (static on x86_64 glibc Linux) and the
# ordinary dynamic build (`RUSTC_WORKSPACE_WRAPPER= cargo build --release`):
# instruction counts (callgrind: repeatable whatever the load), page faults, and whole-process
# medians (hyperfine -N) against /bin/true, flock(1) and cat, all in the same run.
# Usage: bench/startup.sh                 builds both binaries (rebuilding the default one last),
#                                         then measures
#        bench/startup.sh BIN [BIN...]    measures the given binaries instead
#        RUNS=300 bench/startup.sh        hyperfine runs per command (default 200)
# Needs: valgrind (callgrind), perf (page faults; optional), hyperfine, python3, util-linux flock.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-200}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bins=()
if [ $# -eq 0 ]; then
  cp "$(RUSTC_WORKSPACE_WRAPPER='' scripts/cargo-exe --release --bin concur)" "$tmp/concur-dynamic"
  cp "$(scripts/cargo-exe --release --bin concur)" "$tmp/concur-static"
  bins=("$tmp/concur-dynamic" "$tmp/concur-static")
else
  # Named as given (not resolved through symlinks): the tables use the file names.
  for b in "$@"; do bins+=("$(cd "$(dirname "$b")" && pwd)/$(basename "$b")"); done
fi
export CONCUR_HOME="$tmp/home"
unset CONCUR_SESSION CONCUR_BACKEND
cd "$tmp"
"${bins[0]}" home >/dev/null
cat > "$CONCUR_HOME/concur.toml" <<TOML
[guard]
protect = ["~/.claude/projects/*/memory/MEMORY.md", "$tmp/shared/*.jsonl"]
TOML
mkdir -p proj
printf '%s' "{\"session_id\":\"8c35adc1-0b1e\",\"transcript_path\":\"/t.jsonl\",\"cwd\":\"$tmp/proj\",\"permission_mode\":\"default\",\"hook_event_name\":\"PreToolUse\",\"tool_name\":\"Write\",\"tool_input\":{\"file_path\":\"$tmp/proj/x.txt\",\"content\":\"hi\"},\"tool_use_id\":\"toolu_01DU\"}" > payload.json
"${bins[0]}" lock f true

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null | sed -n 's/.*Collected : //p'; }
faults() { perf stat -x, -e page-faults -r 20 "$@" 2>&1 >/dev/null | cut -d, -f1; }
if command -v valgrind >/dev/null; then
  echo "| instructions (callgrind) | $(for b in "${bins[@]}"; do printf '%s | ' "$(basename "$b")"; done)"
  echo "|---|$(for _ in "${bins[@]}"; do printf -- '---|'; done)"
  row() { # label, then the arguments after the binary; stdin is the payload
    printf '| %s |' "$1"; shift
    for b in "${bins[@]}"; do printf ' %s |' "$(count "$b" "$@" < payload.json)"; done; echo
  }
  row '`concur --version`' --version
  row '`concur home`' home
  row '`concur hook claude` (allowed Write)' hook claude
  row '`concur lock f true` (concur only)' lock f true
  printf '| `/bin/true` | %s |\n' "$(count /bin/true)"
  echo
fi
if command -v perf >/dev/null && perf stat -e page-faults true >/dev/null 2>&1; then
  printf '| page faults, `concur home` |'
  for b in "${bins[@]}"; do printf ' %s |' "$(faults "$b" home)"; done
  printf ' `/bin/true`: %s |\n\n' "$(faults /bin/true)"
fi

cmds=(/bin/true "/usr/bin/flock f true")
for b in "${bins[@]}"; do cmds+=("$b --version" "$b home" "$b lock f true"); done
hyperfine -N --warmup 20 --runs "$runs" --export-json r.json "${cmds[@]}" >/dev/null 2>&1
# The hook reads its payload on stdin: timed from Python (fork+exec, payload on a pipe, as an
# agent runs it), interleaved with cat of the same payload as the floor.
python3 - payload.json r.json "$runs" "${bins[@]}" <<'PY'
import json, os, statistics, subprocess, sys, time
payload, results, runs, bins = open(sys.argv[1], "rb").read(), sys.argv[2], int(sys.argv[3]), sys.argv[4:]
name = lambda c: " ".join(os.path.basename(w) if w in bins else w for w in c.split(" "))
med = {name(r["command"]): statistics.median(r["times"]) * 1e3 for r in json.load(open(results))["results"]}
hook = {b: [] for b in bins + ["cat"]}
for i in range(20 + runs):
    for b in hook:
        cmd = ["cat"] if b == "cat" else [b, "hook", "claude"]
        t = time.perf_counter()
        subprocess.run(cmd, input=payload, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
        if i >= 20:
            hook[b].append((time.perf_counter() - t) * 1e3)
for b, v in hook.items():
    med[f"{os.path.basename(b)} hook claude < payload" if b != "cat" else "cat < payload"] = statistics.median(v)
print("| command (median of %d) | ms |" % runs)
print("|---|---|")
for k, v in med.items():
    print(f"| `{k}` | {v:.3f} |")
print()
t, f, c = med["/bin/true"], med["/usr/bin/flock f true"], med["cat < payload"]
for b in map(os.path.basename, bins):
    print(f"{b}: --version / true = {med[b + ' --version'] / t:.2f}; home / true = {med[b + ' home'] / t:.2f}; "
          f"lock f true / flock f true = {med[b + ' lock f true'] / f:.2f}; "
          f"hook / cat = {med[b + ' hook claude < payload'] / c:.2f}")
PY
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
