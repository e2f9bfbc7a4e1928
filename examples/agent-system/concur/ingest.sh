#!/usr/bin/env bash
# Rate-limited ingest API: at most two concurrent POSTs; a killed holder frees its slot at once.
concur slot lightrag --max 2 -- curl -s -X POST http://localhost:9621/documents/text -d @"$1"
