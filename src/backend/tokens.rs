//! One-time tokens on a backend: one trait, [`Tokens`], with the local implementation (files in
//! the home, [`crate::token`]) and the etcd one ([`crate::etcd::token`]).
//!
//! Both promise the same: of any number of concurrent takers of an issued token exactly one
//! wins ([`Outcome::Won`], with the data given at issue); the others learn whether it was
//! [taken](Outcome::Taken), [expired](Outcome::Expired) untaken or never issued
//! ([`Outcome::Absent`]). An expired token stays expired for every later taker. Every take, won
//! or not, is recorded in the audit ledger of the taker's home (`HOME/audit.jsonl`) with the
//! backend's name — the take itself writes the record, so no caller can forget it — and a won
//! take whose record cannot be written puts the token back and fails. Why etcd takes are
//! recorded on the taker's machine and not in etcd: see [`crate::etcd::token`].
//!
//! Expiry differs in where the clock is: locally the taker compares the issuer's wall-clock
//! expiry with its own clock; on etcd the token's key is on a lease, which etcd expires.
//!
//! ```no_run
//! use concur::backend::{Backend, tokens::Issue};
//!
//! let home = concur::Home::resolve()?;
//! let b = Backend::open(Some("etcd://127.0.0.1:2379"), Some(home), None)?; // None: local files
//! let data = serde_json::json!({"by": "alice"});
//! let issue = Issue { ttl: None, data: &data, issuer: None, replace: false };
//! b.tokens()?.issue("release-approval", &issue)?;
//! let take = b.tokens()?.take("release-approval", None)?; // audited in the home's ledger
//! if let Some(refused) = take.refusal() {
//!     return Err(refused);
//! }
//! # Ok::<(), concur::Error>(())
//! ```

use std::time::Duration;

use serde_json::Value;

use super::{Backend, Kind};
use crate::error::Result;
use crate::home::Home;
use crate::id::SessionId;
pub use crate::token::{Issued, Outcome, Take};

/// What an issue asks for.
#[derive(Debug, Clone, Copy)]
pub struct Issue<'a> {
    /// Expire after this long (never when `None`).
    pub ttl: Option<Duration>,
    /// What the winner receives (`null` for nothing).
    pub data: &'a Value,
    /// The issuer's session, recorded with the token.
    pub issuer: Option<&'a SessionId>,
    /// Issue over a live, untaken token of that name instead of failing with a conflict.
    pub replace: bool,
}

/// One-time tokens: issued once, taken by exactly one caller, every take audited.
pub trait Tokens {
    /// Issues token `name`.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] for a bad name; [`crate::Error::Conflict`] when a live token
    /// of that name exists and `issue.replace` is not set; I/O errors (etcd unreachable).
    fn issue(&self, name: &str, issue: &Issue<'_>) -> Result<Issued>;

    /// Takes token `name` for `session` and records the take in the home's audit ledger. Not
    /// winning is an [`Outcome`], not an error; [`Take::refusal`] gives the error to report.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] for a bad name; I/O errors; the audit's error when the record
    /// cannot be written (a won token is put back first).
    fn take(&self, name: &str, session: Option<&SessionId>) -> Result<Take>;
}

/// Tokens as files in the home.
struct Local<'a> {
    home: &'a Home,
}

impl Tokens for Local<'_> {
    fn issue(&self, name: &str, i: &Issue<'_>) -> Result<Issued> {
        crate::token::issue(self.home, name, i.ttl, i.data, i.issuer, i.replace)
    }

    fn take(&self, name: &str, session: Option<&SessionId>) -> Result<Take> {
        crate::token::take(self.home, name, session)
    }
}

/// Tokens as etcd keys, audited in the taker's home.
#[cfg(feature = "etcd")]
struct Etcd<'a> {
    client: &'a crate::etcd::Client,
    home: &'a Home,
}

#[cfg(feature = "etcd")]
impl Tokens for Etcd<'_> {
    fn issue(&self, name: &str, i: &Issue<'_>) -> Result<Issued> {
        crate::etcd::token::issue(self.client, name, i.data, i.ttl, i.issuer, i.replace)
    }

    fn take(&self, name: &str, session: Option<&SessionId>) -> Result<Take> {
        crate::etcd::token::take(self.client, self.home, name, session)
    }
}

impl Backend {
    /// The one-time tokens of this backend.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] when there is no runtime home (every backend audits takes
    /// there).
    pub fn tokens(&self) -> Result<Box<dyn Tokens + '_>> {
        let home = self.require_home()?;
        Ok(match &self.kind {
            Kind::Local => Box::new(Local { home }),
            #[cfg(feature = "etcd")]
            Kind::Etcd { client, .. } => Box::new(Etcd { client, home }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_takes_are_audited_won_or_not() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path().join("h")).unwrap();
        let b = Backend::local(home.clone());
        let t = b.tokens().unwrap();
        let issue = Issue {
            ttl: None,
            data: &Value::Null,
            issuer: None,
            replace: false,
        };
        t.issue("x", &issue).unwrap();
        assert_eq!(t.take("x", None).unwrap().outcome, Outcome::Won);
        assert_eq!(t.take("x", None).unwrap().outcome, Outcome::Taken);
        let ledger = std::fs::read_to_string(home.join("audit.jsonl")).unwrap();
        let outcomes: Vec<String> = ledger
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["outcome"].to_string())
            .collect();
        assert_eq!(outcomes, [r#""won""#, r#""taken""#]);
    }
}
