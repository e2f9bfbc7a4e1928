//! Py placeholder
use super::Unit;
pub(crate) fn analyze(_u: &mut Unit, _s: &str, _b: usize, _locked: bool) {}
