#!/usr/bin/env bash
# Daily message log, the naive way: two first writers of the day both write the header.
STATE="${AGENT_STATE:-$HOME/.agent}"
LOG_FILE="$STATE/daily-logs/$(date +%Y-%m-%d).md"
if [ ! -f "$LOG_FILE" ]; then
  echo "# Messages $(date +%F)" > "$LOG_FILE"
fi
echo "- $(date +%T) $PROMPT" >> "$LOG_FILE"
