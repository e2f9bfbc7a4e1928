# shellcheck shell=bash
# Sourced by bench/lease.sh and bench/goals.sh: what `concur lease acquire` does to leases.db,
# as SQL for the sqlite3 CLI (busy_timeout, synchronous=FULL, BEGIN IMMEDIATE, read the row,
# bump the fencing counter, insert the lease, commit), and the release that undoes it.
# shellcheck disable=SC2034
PRE="PRAGMA busy_timeout=30000; PRAGMA synchronous=FULL;"
ACQUIRE="$PRE BEGIN IMMEDIATE;
SELECT task, session, token FROM leases WHERE task = 'sql';
UPDATE counter SET fence = fence + 1 WHERE id = 1;
INSERT OR REPLACE INTO leases (task, session, token, once, pid, cwd, acquired_at, renewed_at,
  ttl_ms, expires_ms, boot_id, completed_by, completed_at)
  VALUES ('sql', 'bench', (SELECT fence FROM counter WHERE id = 1), 0, NULL, '/w', 0, 0, 600000,
  0, 'boot', NULL, NULL);
SELECT token FROM leases WHERE task = 'sql';
COMMIT;"
RELEASE="$PRE DELETE FROM leases WHERE task = 'sql';"
