#!/usr/bin/env python3
"""Memory and evidence index, the naive way."""
import json
import os
import sqlite3
import sys

STATE = os.environ.get("AGENT_STATE", os.path.join(os.path.expanduser("~"), ".agent"))
MEMORY = os.path.join(STATE, "MEMORY.md")
INDEX = os.path.join(STATE, "evidence-index.jsonl")


def remember(line):
    with open(MEMORY, "a") as f:
        f.write(line + "\n")


def index(entry):
    # read the whole index to dedup, then append: two sessions both append the same entry
    seen = set()
    if os.path.exists(INDEX):
        with open(INDEX) as f:
            seen = {json.loads(l)["id"] for l in f}
    if entry["id"] not in seen:
        with open(INDEX, "a") as f:
            f.write(json.dumps(entry) + "\n")


def store(fact):
    db = sqlite3.connect(os.path.join(STATE, "hivemind.db"), timeout=0)
    db.execute("INSERT INTO facts VALUES (?)", (fact,))
    db.commit()


if __name__ == "__main__":
    remember(sys.stdin.read().strip())
