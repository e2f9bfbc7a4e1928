#!/usr/bin/env bash
# Ingest health counter: one locked read-modify-write with atomic replace.
STATE="${AGENT_STATE:-$HOME/.agent}"
HEALTH="$STATE/ingest-health.json"
concur json "$HEALTH" --init '{"fire_count":0}' '.fire_count += 1 | .last = now'
