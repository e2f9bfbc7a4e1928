//! JS placeholder
use super::{Lang, Unit};
pub(crate) fn analyze(_u: &mut Unit, _l: Lang, _s: &str, _b: usize, _locked: bool) {}
