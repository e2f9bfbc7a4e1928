#!/usr/bin/env bash
# Wall time of one `concur hook claude` answer for each hostile payload of issue 13 item 5, and
# for an ordinary Write as the baseline (with a reservation held, so the store is consulted).
# Each case: the median of RUNS fresh processes, the payload on stdin, and the answer's kind.
#
# Usage: bench/hook-hostile.sh [RUNS]   (default 5; needs python3 and a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cargo build --release --quiet --bin concur
bin=$PWD/target/release/concur
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export CONCUR_HOME="$dir/home"
mkdir -p "$dir/repo/.git" "$dir/repo/src" "$dir/g"
"$bin" home >/dev/null
(cd "$dir/repo" && CONCUR_SESSION=holder "$bin" reserve 'src/*.rs' >/dev/null)
printf '[guard]\nprotect = ["%s/g/***************x"]\n' "$dir" >"$CONCUR_HOME/concur.toml"
python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
r = f"{d}/repo"
def w(name, cwd, path, content="x", tool="Write", cmd=None):
    ti = {"command": cmd} if cmd else {"file_path": path, "content": content}
    p = {"session_id": "s", "cwd": cwd, "hook_event_name": "PreToolUse",
         "tool_name": "Bash" if cmd else tool, "tool_input": ti}
    open(f"{d}/{name}.json", "w").write(json.dumps(p))
w("baseline", r, f"{r}/src/lib.rs")
w("a-slash-100000", r, r + "/" + "a/" * 100000)
w("backslash-100001", r, r + "/" + "\\" * 100001)
w("relative-cwd-200KB", "d/" * 100000, "f.rs")
w("star-path-80KB", r, f"{r}/src/" + "x*" * 40000)
w("guard-15-stars", r, f"{d}/g/" + "a" * 250)
w("content-1MB", r, f"{r}/big.txt", content="x" * 1_000_000)
w("shell-nested-2000", r, None, cmd="$(" * 2000 + "echo > y.rs" + ")" * 2000)
w("shell-and-chain-20000", r, None, cmd="true && " * 20000 + "echo > y.rs")
w("shell-redirect-storm", r, None, cmd="echo x > s" + "> s" * 16 + ">" * 12000)
PY
python3 -c "import sys; sys.stdout.write('{\"x\":\"' + 'y' * (2 << 20) + '\"}')" >"$dir/over-1MiB.json"
printf '%-24s %9s  %s\n' case median answer
for f in "$dir"/*.json; do
  name=$(basename "$f" .json)
  times=()
  for _ in $(seq "$runs"); do
    s=$(date +%s%N)
    out=$("$bin" hook claude <"$f" 2>&1) || true
    e=$(date +%s%N)
    times+=($(((e - s) / 1000)))
  done
  med=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
  kind=allow
  case "$out" in *deny*|*refus*) kind=deny ;; esac
  printf '%-24s %7.1f ms  %s\n' "$name" "$(echo "$med / 1000" | bc -l)" "$kind"
done
