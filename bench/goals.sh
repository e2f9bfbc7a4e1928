#!/usr/bin/env bash
# The whole-process goals of issue 18, each concur command paired with its anchor and run
# interleaved (concur, anchor, concur, anchor, ... alternating which goes first), so load that
# comes and goes hits both sides alike; medians of each side, their ratio, and the median of
# the per-pair ratios, all from one run:
#   lock F true                 ÷ flock F true                              goal ≤ 1.0
#   append F LINE (durable)     ÷ flock F.lock sh -c 'echo LINE >> F'       goal ≤ 0.5
#   hook claude < payload       ÷ cat < payload  (allowed PreToolUse)       goal ≤ 1.0
#   lease acquire               ÷ sqlite3 CLI, same transaction             goal ≤ 0.5
#   --backend etcd lock --name  ÷ etcdctl lock                              goal ≤ 0.2
# Every process is started from Python with posix_spawn and timed from spawn to reap (the same
# overhead on both sides; it pushes ratios toward 1, never away).
#
# Usage: bench/goals.sh [BIN]   BIN defaults to what `cargo install --locked --path .` makes
#                               (installed into a temp root; a clean release build: slow)
#        RUNS=300 bench/goals.sh BIN   (pairs per goal, default 200)
# Needs: python3, util-linux flock, sqlite3; etcd and etcdctl (Debian etcd-server, etcd-client)
# for the etcd pair (skipped when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-200}
. bench/lib/etcd.sh # $tmp, etcd_start; stops the servers on exit
if [ $# -gt 0 ]; then
  bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
else
  cargo install --quiet --locked --path . --root "$tmp/root"
  bin=$tmp/root/bin/concur
fi
url=
if command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
  etcd_start 1
  url=$etcd_url
fi
echo "binary: $bin ($(LC_ALL=C readelf -l "$bin" 2>/dev/null | grep -q INTERP && echo dynamic || echo static))"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
. bench/lib/lease-sql.sh # $ACQUIRE, $RELEASE
python3 - "$bin" "$tmp" "$runs" "$url" "${etcd_eps:-}" "$ACQUIRE" "$RELEASE" <<'PY'
import os, statistics, subprocess, sys, time
bin, tmp, runs, url, eps = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
work = os.path.join(tmp, "w")
os.makedirs(os.path.join(work, "proj"))
os.chdir(work)
env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "CONCUR_HOME": os.path.join(work, "home"),
       "CONCUR_SESSION": "bench", "ETCDCTL_API": "3"}
def run(argv, stdin=None):
    """Spawns argv (stdout and stderr to /dev/null, stdin from a file), waits; seconds."""
    acts = [(os.POSIX_SPAWN_OPEN, 0, stdin or "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)]
    t = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=acts)
    _, status = os.waitpid(pid, 0)
    t = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(argv)}")
    return t
def quiet(argv):
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

subprocess.run([bin, "home"], env=env, stdout=subprocess.DEVNULL, check=True)
with open(os.path.join(env["CONCUR_HOME"], "concur.toml"), "w") as f:
    f.write('[guard]\nprotect = ["~/.claude/projects/*/memory/MEMORY.md", "%s/shared/*.jsonl"]\n' % work)
payload = os.path.join(work, "payload.json")
with open(payload, "w") as f:
    f.write('{"session_id":"8c35adc1-0b1e","transcript_path":"/t.jsonl","cwd":"%s/proj",'
            '"permission_mode":"default","hook_event_name":"PreToolUse","tool_name":"Write",'
            '"tool_input":{"file_path":"%s/proj/x.txt","content":"hi"},"tool_use_id":"toolu_01DU"}'
            % (work, work))
line = '{"event":"tool","session":"s1","n":42,"ok":true}'
db = os.path.join(env["CONCUR_HOME"], "leases.db")
subprocess.run([bin, "lease", "list"], env=env, stdout=subprocess.DEVNULL, check=True)
acquire, release = sys.argv[6], sys.argv[7]
sh = "/bin/sh"
goals = [
    ("`concur lock F true` ÷ `flock F true`", 1.0,
     lambda: run([bin, "lock", "f", "true"]), lambda: run(["/usr/bin/flock", "f", "true"]), None, None),
    ("`concur append F LINE` (durable) ÷ `flock F.lock sh -c 'echo LINE >> F'`", 0.5,
     lambda: run([bin, "append", "a.jsonl", line]),
     lambda: run(["/usr/bin/flock", "c.jsonl.lock", sh, "-c", "echo '%s' >> c.jsonl" % line]), None, None),
    ("`concur append --no-fsync F LINE` ÷ the same", 0.5,
     lambda: run([bin, "append", "--no-fsync", "b.jsonl", line]),
     lambda: run(["/usr/bin/flock", "c.jsonl.lock", sh, "-c", "echo '%s' >> c.jsonl" % line]), None, None),
    ("`concur hook claude` (allowed PreToolUse) ÷ `cat` of the payload", 1.0,
     lambda: run([bin, "hook", "claude"], payload), lambda: run(["/bin/cat"], payload), None, None),
    ("`concur lease acquire` ÷ `sqlite3` CLI, same transaction (synchronous=FULL)", 0.5,
     lambda: run([bin, "lease", "acquire", "cli"]), lambda: run(["/usr/bin/sqlite3", db, acquire]),
     lambda: quiet([bin, "session", "end"]), lambda: quiet(["/usr/bin/sqlite3", db, release])),
]
if url:
    goals.append(("`concur --backend etcd://… lock --name N true` ÷ `etcdctl lock N true`", 0.2,
                  lambda: run([bin, "--backend", url, "lock", "--name", "bench", "true"]),
                  lambda: run(["/usr/bin/etcdctl", "--endpoints", eps, "lock", "bench", "/bin/true"]),
                  None, None))
print()
print(f"| goal (median of {runs} interleaved pairs) | concur ms | anchor ms | ratio of medians | median of pair ratios | goal | met |")
print("|---|---|---|---|---|---|---|")
for name, goal, a, b, prep_a, prep_b in goals:
    ta, tb, pr = [], [], []
    for i in range(runs + 10):
        order = ((prep_a, a), (prep_b, b)) if i % 2 == 0 else ((prep_b, b), (prep_a, a))
        got = {}
        for prep, f in order:
            if prep:
                prep()
            got[f] = f()
        if i >= 10:
            ta.append(got[a]); tb.append(got[b]); pr.append(got[a] / got[b])
    ma, mb = statistics.median(ta) * 1e3, statistics.median(tb) * 1e3
    ratio = ma / mb
    print(f"| {name} | {ma:.3f} | {mb:.3f} | {ratio:.2f} | {statistics.median(pr):.2f} | ≤ {goal} | {'yes' if ratio <= goal else 'no'} |")

# The durable commits in the lease pair: fsync-family calls per process and the time spent in
# them (strace -T; strace slows every call, so only the fsync time is read from it).
import re, shutil
if shutil.which("strace"):
    print()
    print("| lease acquire, durable commits (median of 20 under strace) | fsync calls | ms in fsync | ms wall under strace |")
    print("|---|---|---|---|")
    for label, prep, argv in (("concur lease acquire", [bin, "session", "end"], [bin, "lease", "acquire", "cli"]),
                              ("sqlite3 CLI", ["/usr/bin/sqlite3", db, release], ["/usr/bin/sqlite3", db, acquire])):
        calls, spent, wall = [], [], []
        for _ in range(20):
            quiet(prep)
            log = os.path.join(tmp, "strace.log")
            wall.append(run(["/usr/bin/strace", "-f", "-T", "-e", "trace=fsync,fdatasync,sync_file_range",
                             "-o", log] + argv))
            times = [float(t) for t in re.findall(r"<([0-9.]+)>", open(log).read())]
            calls.append(len(times)); spent.append(sum(times))
        print(f"| {label} | {statistics.median(calls):.0f} | {statistics.median(spent) * 1e3:.3f} | {statistics.median(wall) * 1e3:.3f} |")
PY
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
