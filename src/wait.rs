//! The one wait policy of every acquire (locks, slots, leases, on every backend): do not wait,
//! wait this long, or wait until acquired. A leaf: it depends on nothing else in the crate.

use std::time::{Duration, Instant};

/// How long an acquire waits for a busy lock, slot or lease: the one wait policy of every
/// backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Do not wait: report busy.
    No,
    /// Wait at most this long, then fail with a timeout.
    For(Duration),
    /// Wait until acquired.
    Forever,
}

impl Wait {
    /// The policy of the `-n` / `-w SECS` options: `-n` or `-w 0` do not wait, `-w` waits that
    /// long, neither waits forever.
    #[must_use]
    pub fn from_options(nonblock: bool, timeout: Option<Duration>) -> Wait {
        match timeout {
            _ if nonblock => Wait::No,
            Some(t) if t.is_zero() => Wait::No,
            Some(t) => Wait::For(t),
            None => Wait::Forever,
        }
    }

    /// When waiting that started at `from` gives up; `None` for [`Wait::Forever`].
    #[must_use]
    pub fn deadline(self, from: Instant) -> Option<Instant> {
        match self {
            Wait::For(d) => Some(from + d),
            Wait::No => Some(from),
            Wait::Forever => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_follows_the_options() {
        assert_eq!(Wait::from_options(true, None), Wait::No);
        assert_eq!(Wait::from_options(false, Some(Duration::ZERO)), Wait::No);
        assert_eq!(
            Wait::from_options(false, Some(Duration::from_secs(2))),
            Wait::For(Duration::from_secs(2))
        );
        assert_eq!(Wait::from_options(false, None), Wait::Forever);
    }
}
