#!/usr/bin/env node
// Mission control helper: every shared write goes through a concur primitive.
const { execFileSync } = require('child_process');
const os = require('os');
const path = require('path');

const STATE = process.env.AGENT_STATE || path.join(os.homedir(), '.agent');

function recordEvidence(entry) {
  execFileSync('concur', ['append', path.join(STATE, 'evidence-ledger.jsonl'), JSON.stringify(entry)]);
}

function startHopBuild(taskId) {
  // build-once: exactly one session ever starts this task
  try {
    execFileSync('concur', ['lease', 'acquire', `hop-build-${taskId}`, '--once']);
    return true;
  } catch (e) {
    return false;
  }
}

function markParentDone(id, body) {
  execFileSync('concur', ['write', path.join(STATE, 'gotcha', `task-${id}.md`)], { input: body });
}

module.exports = { recordEvidence, startHopBuild, markParentDone };
