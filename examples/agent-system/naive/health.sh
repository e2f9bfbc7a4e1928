#!/usr/bin/env bash
# Ingest health counter, the naive way: read, bump, write back. Two hooks at once lose a bump.
STATE="${AGENT_STATE:-$HOME/.agent}"
HEALTH="$STATE/ingest-health.json"
[ -f "$HEALTH" ] || echo '{"fire_count":0}' > "$HEALTH"
jq '.fire_count += 1 | .last = now' "$HEALTH" > "$HEALTH.tmp"
mv "$HEALTH.tmp" "$HEALTH"
