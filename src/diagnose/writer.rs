//! The writer side: what `concur diagnose-writer SPEC` does inside each writer process.
//!
//! It reports `ready`, then waits on the barrier (reads stdin to EOF: the parent closes the pipe
//! once every writer has reported `ready`), then performs its operations and reports each as a JSON line on stdout. Built-in
//! targets do their operations in-process; a custom writer runs the user's command once per
//! operation with `sh -c`, under a per-run timeout.

use std::io::Read;

use super::{Events, WriterSpec, custom, targets};
use crate::error::{Error, Result};

/// Runs one writer process from its JSON spec.
///
/// # Errors
/// An unparsable spec, an unknown target, or the target's own failure.
pub fn serve(spec_json: &str) -> Result<()> {
    let spec: WriterSpec = serde_json::from_str(spec_json)
        .map_err(|e| Error::Invalid(format!("bad writer spec: {e}")))?;
    let mut events = Events::stdout();
    // Tell the parent we are at the barrier (started, parsed, about to block), then block.
    let now = super::now_us();
    events.emit("ready", now, now, serde_json::Value::Null);
    wait_for_barrier();
    if let Some(run) = &spec.custom {
        return custom::write(&spec, run, &mut events);
    }
    let target = targets::find(&spec.target)
        .ok_or_else(|| Error::Invalid(format!("unknown target {:?}", spec.target)))?;
    target.write(&spec, &mut events)
}

/// Blocks until the parent closes the barrier pipe (our stdin).
fn wait_for_barrier() {
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin().lock();
    while stdin.read(&mut sink).is_ok_and(|n| n > 0) {}
}
