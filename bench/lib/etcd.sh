# shellcheck shell=bash
# Sourced by the bench scripts that need etcd: makes a scratch dir $tmp, starts etcd clusters
# on loopback (free ports, data dirs under $tmp), waits until they answer, and on exit stops
# them by pid and removes $tmp.
#
#   . bench/lib/etcd.sh
#   etcd_start 1        # sets $etcd_url (etcd://...), $etcd_eps (host:port,...), $etcd_port
#
# A script with more to clean up sets its own EXIT trap and calls etcd_cleanup from it.
# Needs: etcd (Debian etcd-server), python3 (free ports, health check).

etcd_pids=()
etcd_clusters=0
tmp=$(mktemp -d)
trap etcd_cleanup EXIT

# free_port: prints a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# etcd_start N: starts an N-member cluster; sets etcd_url, etcd_eps (all client endpoints) and
# etcd_port (the first member's client port, for its HTTP API); exits if it does not answer.
etcd_start() {
  local n=$1 i name initial="" cps=() pps=()
  etcd_clusters=$((etcd_clusters + 1))
  for ((i = 0; i < n; i++)); do
    cps[i]=$(free_port); pps[i]=$(free_port)
    initial+="${initial:+,}e$etcd_clusters-$i=http://127.0.0.1:${pps[i]}"
  done
  for ((i = 0; i < n; i++)); do
    name=e$etcd_clusters-$i
    etcd --name "$name" --data-dir "$tmp/$name" \
      --listen-client-urls "http://127.0.0.1:${cps[i]}" --advertise-client-urls "http://127.0.0.1:${cps[i]}" \
      --listen-peer-urls "http://127.0.0.1:${pps[i]}" --initial-advertise-peer-urls "http://127.0.0.1:${pps[i]}" \
      --initial-cluster "$initial" --initial-cluster-token "bench-$etcd_clusters-$$" >"$tmp/$name.log" 2>&1 &
    etcd_pids+=($!)
  done
  etcd_port=${cps[0]}
  etcd_eps=$(printf '127.0.0.1:%s,' "${cps[@]}"); etcd_eps=${etcd_eps%,}
  etcd_url="etcd://$etcd_eps"
  python3 - "${cps[@]}" <<'PY' || { echo "etcd cluster of $n did not start (logs: $tmp/e$etcd_clusters-*.log)" >&2; exit 1; }
import json, sys, time, urllib.request
for _ in range(200):
    try:
        if all(json.load(urllib.request.urlopen(f"http://127.0.0.1:{p}/health", timeout=1))["health"] == "true"
               for p in sys.argv[1:]):
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.05)
sys.exit(1)
PY
}

# etcd_stop: stops every member etcd_start started and waits for them.
etcd_stop() {
  local p
  for p in "${etcd_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${etcd_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  etcd_pids=()
}

# etcd_cleanup: etcd_stop, then removes $tmp.
etcd_cleanup() {
  etcd_stop
  rm -rf "$tmp"
}
