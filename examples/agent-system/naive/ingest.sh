#!/usr/bin/env bash
# Rate-limited ingest API, the naive way: mkdir slots in /tmp that a killed holder never frees.
for slot in 0 1; do
  if mkdir "/tmp/lightrag-slot-$slot" 2>/dev/null; then
    curl -s -X POST http://localhost:9621/documents/text -d @"$1"
    rmdir "/tmp/lightrag-slot-$slot"
    exit 0
  fi
done
exit 1
