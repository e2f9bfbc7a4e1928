//! One harness for tests that must hold on every backend: `on_both_backends!` turns one test
//! body into a `local` test and an `etcd` test (a one-member cluster from Debian's etcd-server
//! on loopback). The body gets a [`Backend`] whose [`Backend::cmd`] runs `concur` on it.
//!
//! Without etcd installed the `etcd` half is skipped with a message, or fails when
//! `CONCUR_REQUIRE_ETCD=1` (as the test command and CI set it).

use std::ffi::OsStr;
use std::process::{Command, Output};

use crate::util::TestEnv;

/// The backend one half of a parametrised test runs on.
pub struct Backend {
    /// The test's directory and home (the local store; on etcd the session registry).
    pub env: TestEnv,
    #[cfg(feature = "etcd")]
    cluster: Option<crate::etcd_util::Cluster>,
}

impl Backend {
    /// Local files in a fresh home.
    pub fn local() -> Backend {
        Backend {
            env: TestEnv::new(),
            #[cfg(feature = "etcd")]
            cluster: None,
        }
    }

    /// A fresh one-member etcd cluster; `None` (skipped) when etcd is not installed.
    #[cfg(feature = "etcd")]
    pub fn etcd(test: &str) -> Option<Backend> {
        if !crate::etcd_util::available(test) {
            return None;
        }
        Some(Backend {
            env: TestEnv::new(),
            cluster: Some(crate::etcd_util::Cluster::start(1)),
        })
    }

    /// `"local"` or `"etcd"`, as `--json` outputs name the backend.
    pub fn name(&self) -> &'static str {
        if self.url().is_some() {
            "etcd"
        } else {
            "local"
        }
    }

    /// The backend URL (`None`: local).
    #[cfg_attr(not(feature = "etcd"), allow(clippy::unused_self))]
    pub fn url(&self) -> Option<String> {
        #[cfg(feature = "etcd")]
        if let Some(c) = &self.cluster {
            return Some(c.url());
        }
        None
    }

    /// A gauge or counter of the etcd member's `/metrics` (`None` on the local backend).
    #[cfg_attr(not(feature = "etcd"), allow(clippy::unused_self, unused_variables))]
    pub fn etcd_metric(&self, name: &str) -> Option<f64> {
        #[cfg(feature = "etcd")]
        if let Some(c) = &self.cluster {
            return Some(c.metric(0, name));
        }
        None
    }

    /// `concur ARGS...` on this backend (`CONCUR_BACKEND` set for etcd).
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.env.cmd(args);
        if let Some(u) = self.url() {
            c.env("CONCUR_BACKEND", u);
        }
        c
    }

    /// Runs `concur ARGS...` on this backend to completion.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd(args).output().expect("spawn concur")
    }
}

/// `on_both_backends! { fn name(b) { ... } }`: the body as `name::local` and `name::etcd`.
#[macro_export]
macro_rules! on_both_backends {
    ($(#[$meta:meta])* fn $name:ident($b:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$meta])*
            fn body($b: &$crate::backends::Backend) $body

            #[test]
            fn local() {
                body(&$crate::backends::Backend::local());
            }

            #[cfg(feature = "etcd")]
            #[test]
            fn etcd() {
                if let Some(b) = $crate::backends::Backend::etcd(concat!(stringify!($name), "::etcd")) {
                    body(&b);
                }
            }
        }
    };
}
