#!/usr/bin/env bash
# Daily message log: the header is written exactly once, lines are single O_APPEND writes.
STATE="${AGENT_STATE:-$HOME/.agent}"
LOG_FILE="$STATE/daily-logs/$(date +%Y-%m-%d).md"
concur append --raw --header "# Messages $(date +%F)" "$LOG_FILE" "- $(date +%T) $PROMPT"
