#!/usr/bin/env node
// Mission control helper, the naive way.
const fs = require('fs');
const os = require('os');
const path = require('path');

const STATE = process.env.AGENT_STATE || path.join(os.homedir(), '.agent');
const LEDGER = path.join(STATE, 'evidence-ledger.jsonl');

function recordEvidence(entry) {
  // O_APPEND, one write per line: fine below PIPE_BUF, interleaves above it
  const fd = fs.openSync(LEDGER, 'a');
  fs.writeSync(fd, JSON.stringify(entry) + '\n');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
}

function startHopBuild(taskId) {
  // two sessions dispatching the same task both pass the check
  const marker = path.join('/tmp', `hop-build-started-${taskId}`);
  if (fs.existsSync(marker)) return false;
  fs.writeFileSync(marker, String(process.pid));
  return true;
}

function markParentDone(id, body) {
  // truncating write of a predictable /tmp path
  fs.writeFileSync(`/tmp/gotcha-task-${id}.md`, body);
}

module.exports = { recordEvidence, startHopBuild, markParentDone };
