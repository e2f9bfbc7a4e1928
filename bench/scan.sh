#!/usr/bin/env bash
# Scan throughput: `concur scan` on a few MB of real scripts (the system's own shell scripts,
# Python modules, and the JS of a few npm packages packed into a temp dir), MB/s on one core
# including classification, and the same tree through semgrep with a comparable rule set.
# Nothing is written outside a temp dir; nothing is committed.
#
# Usage: bench/scan.sh [--quick]
#   needs: hyperfine, npm; semgrep (pip install semgrep)
#   for the comparison (skipped with a message when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CONCUR_BIN:-$(scripts/cargo-exe --release --bin concur)}
RUNS=5
[ "${1:-}" = "--quick" ] && RUNS=2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
corpus="$work/corpus"
mkdir -p "$corpus/sh" "$corpus/py" "$corpus/js"

# 1. shell scripts under /usr (by shebang), up to ~2 MB; 2. Python stdlib modules, up to ~2 MB
python3 - "$corpus" <<'PY'
import os, re, shutil, sys, sysconfig
corpus = sys.argv[1]
shebang = re.compile(rb"^#!\s*(/usr)?/bin/(env\s+)?(ba|da)?sh\b")
budget, total, n = 2 << 20, 0, 0
for root in ("/usr/bin", "/usr/sbin", "/usr/share", "/usr/lib"):
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(dirpath, name)
            try:
                if os.path.islink(p) or not os.path.isfile(p) or os.path.getsize(p) > 200_000:
                    continue
                with open(p, "rb") as f:
                    if not shebang.match(f.read(64)):
                        continue
            except OSError:
                continue
            n += 1
            shutil.copyfile(p, os.path.join(corpus, "sh", str(n)))
            total += os.path.getsize(p)
            if total >= budget:
                break
        if total >= budget:
            break
    if total >= budget:
        break
stdlib, total = sysconfig.get_paths()["stdlib"], 0
for name in sorted(os.listdir(stdlib)):
    p = os.path.join(stdlib, name)
    if name.endswith(".py") and os.path.isfile(p):
        shutil.copyfile(p, os.path.join(corpus, "py", name))
        total += os.path.getsize(p)
        if total >= 2 << 20:
            break
PY

# 3. JS of a few npm packages (npm pack: tarballs only, no install scripts run)
( cd "$work" && npm pack --silent fs-extra@11 graceful-fs@4 proper-lockfile@4 write-file-atomic@5 \
    lockfile@1 mkdirp@3 rimraf@5 glob@10 commander@12 yargs@17 >/dev/null 2>&1 ) || true
for t in "$work"/*.tgz; do
  [ -e "$t" ] || continue
  d="$corpus/js/$(basename "$t" .tgz)"; mkdir -p "$d"; tar -xzf "$t" -C "$d"
done
# the npm tarballs contain node_modules-free package dirs named package/: keep them scannable
find "$corpus/js" -name node_modules -prune -exec rm -rf {} + 2>/dev/null || true

bytes=$(find "$corpus" -type f \( -path '*/sh/*' -o -name '*.py' -o -name '*.js' -o -name '*.mjs' -o -name '*.cjs' -o -name '*.ts' \) -printf '%s\n' | awk '{s+=$1} END {print s}')
files=$(find "$corpus" -type f | wc -l)
mb=$(awk -v b="$bytes" 'BEGIN {printf "%.2f", b / 1048576}')
echo "corpus: $files files, $mb MB (sh $(du -sh "$corpus/sh" | cut -f1), py $(du -sh "$corpus/py" | cut -f1), js $(du -sh "$corpus/js" | cut -f1))"
"$BIN" scan "$corpus" --format json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print("concur scan:", len(d["findings"]), "findings,", len(d["inventory"]), "resources")'

# semgrep rules comparable to the scan's write-site patterns
cat > "$work/rules.yml" <<'YML'
rules:
  - id: js-fs-write
    languages: [javascript, typescript]
    severity: INFO
    message: fs write site
    pattern-either:
      - pattern: fs.writeFileSync(...)
      - pattern: fs.writeFile(...)
      - pattern: fs.appendFileSync(...)
      - pattern: fs.appendFile(...)
      - pattern: fs.openSync(...)
      - pattern: fs.renameSync(...)
      - pattern: fs.rename(...)
      - pattern: fs.mkdirSync(...)
      - pattern: fs.existsSync(...)
      - pattern: fs.createWriteStream(...)
      - pattern: $L.lockSync(...)
      - pattern: new Database(...)
  - id: py-write
    languages: [python]
    severity: INFO
    message: python write site
    pattern-either:
      - pattern: open($P, $M, ...)
      - pattern: os.open(...)
      - pattern: os.replace(...)
      - pattern: os.rename(...)
      - pattern: $P.write_text(...)
      - pattern: $P.replace(...)
      - pattern: os.mkdir(...)
      - pattern: os.path.exists(...)
      - pattern: fcntl.flock(...)
      - pattern: sqlite3.connect(...)
  - id: sh-write
    languages: [bash]
    severity: INFO
    message: shell write site
    pattern-either:
      - pattern: mv $A $B
      - pattern: tee ...
      - pattern: mkdir $D
      - pattern: flock ...
YML

export SEMGREP_SEND_METRICS=off
have_semgrep=0
if command -v semgrep >/dev/null 2>&1; then have_semgrep=1; fi

cmds=("taskset -c 0 $BIN scan $corpus --format json")
names=("concur scan")
if [ "$have_semgrep" = 1 ]; then
  cmds+=("taskset -c 0 semgrep scan --config $work/rules.yml --metrics=off --disable-version-check -j 1 --quiet --json --scan-unknown-extensions $corpus")
  names+=("semgrep")
else
  echo "semgrep not installed (pip install semgrep): comparison skipped"
fi
args=()
for i in "${!cmds[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]} >/dev/null 2>&1"); done
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$work/h.json" "${args[@]}" >/dev/null 2>&1 \
  || hyperfine --warmup 1 --runs "$RUNS" --export-json "$work/h.json" "${args[@]}" >/dev/null
python3 - "$work/h.json" "$bytes" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
mb = int(sys.argv[2]) / 1048576
wall = {r["command"]: r["median"] for r in res}
# CPU time (user + system, children included): what one core spends, independent of how
# many other jobs share the machine
cpu = {r["command"]: (sum(r["user"] if isinstance(r["user"], list) else [r["user"]]) / max(1, len(r["user"]) if isinstance(r["user"], list) else 1)) + (r["system"] if not isinstance(r["system"], list) else sum(r["system"]) / len(r["system"])) for r in res}
for name in wall:
    print(f"{name:12} wall median {wall[name]:7.3f} s ({mb / wall[name]:6.2f} MB/s)   "
          f"cpu {cpu[name]:7.3f} s ({mb / cpu[name]:6.2f} MB/s on one core)")
if "semgrep" in wall:
    print(f"ratio (semgrep / concur scan): wall {wall['semgrep'] / wall['concur scan']:.1f}x, "
          f"cpu {cpu['semgrep'] / cpu['concur scan']:.1f}x")
PY
