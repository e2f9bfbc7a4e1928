#!/usr/bin/env bash
# Pre-dispatch gate, the naive way: global /tmp markers, a check-then-rm override token and a
# world-writable active-task pointer.
ID="${CLAUDE_SESSION_ID:-unknown}"
MARKER="/tmp/mehanik-cleared-$ID"
if [ ! -f "$MARKER" ]; then
  touch "$MARKER"
fi
TOKEN=/tmp/opus-override-token
if [ -f "$TOKEN" ]; then
  rm -f "$TOKEN"
  echo "override used" >&2
fi
echo "$TASK_ID" > /tmp/mc-active-task
