#!/usr/bin/env bash
# Pre-dispatch gate: session-scoped marker, a token only one session can take, and a
# per-session pointer.
concur marker set mehanik-cleared
if concur token take opus-override 2>/dev/null; then
  echo "override used" >&2
fi
concur pointer set active-task "$TASK_ID"
