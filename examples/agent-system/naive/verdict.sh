#!/usr/bin/env bash
# Verdict ledger, the naive way: a mkdir lock whose retry loop gives up and writes anyway.
STATE="${AGENT_STATE:-$HOME/.agent}"
LEDGER="$STATE/verdict-ledger.jsonl"
LOCK="$STATE/verdict-ledger.lock.d"
i=0
until mkdir "$LOCK" 2>/dev/null; do
  i=$((i + 1))
  [ "$i" -ge 100 ] && break
  sleep 0.01
done
prev=$(tail -n 1 "$LEDGER" | jq -r .hash)
echo "{\"prev\":\"$prev\",\"verdict\":\"$1\"}" >> "$LEDGER"
rmdir "$LOCK" 2>/dev/null
