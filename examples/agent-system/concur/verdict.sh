#!/usr/bin/env bash
# Verdict ledger: hash-chained append; a lock timeout fails instead of writing unprotected.
STATE="${AGENT_STATE:-$HOME/.agent}"
concur ledger append "$STATE/verdict-ledger.jsonl" "{\"verdict\":\"$1\"}"
