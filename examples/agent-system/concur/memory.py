#!/usr/bin/env python3
"""Memory and evidence index: concur verbs for files, WAL + busy timeout for SQLite."""
import json
import os
import sqlite3
import subprocess
import sys

STATE = os.environ.get("AGENT_STATE", os.path.join(os.path.expanduser("~"), ".agent"))


def remember(line):
    # the broker serialises every MEMORY.md append and group-commits them
    subprocess.run(["concur", "append", "--broker", "--raw", os.path.join(STATE, "MEMORY.md"), line], check=True)


def index(entry):
    # dedup under the sidecar lock: a retried entry is written once
    subprocess.run(["concur", "append", "--dedup-key", "id", os.path.join(STATE, "evidence-index.jsonl"), json.dumps(entry)], check=True)


def store(fact):
    db = sqlite3.connect(os.path.join(STATE, "hivemind.db"), timeout=5)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("INSERT INTO facts VALUES (?)", (fact,))
    db.commit()


if __name__ == "__main__":
    remember(sys.stdin.read().strip())
