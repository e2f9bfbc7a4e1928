//! Shutdown, passed in as a value so a server is testable on a temporary socket: any clone can
//! trigger it, and triggering wakes the accept loop by connecting to the server's own socket.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::sys;

/// A shutdown switch shared by a server and whoever may stop it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    wake: Arc<Mutex<Option<PathBuf>>>,
}

impl Shutdown {
    /// A switch that is not triggered.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// A switch triggered by SIGTERM, SIGINT or SIGHUP.
    ///
    /// The signals are blocked in the calling thread, so call this before spawning any thread
    /// (they inherit the mask); a dedicated thread waits for them.
    ///
    /// # Errors
    /// [`Error::Io`] if the signal mask cannot be set or the thread cannot start.
    pub fn on_signals() -> Result<Shutdown> {
        let sigs = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];
        sys::signal::block(&sigs).map_err(Error::with("cannot block signals", Path::new("")))?;
        let s = Shutdown::new();
        let t = s.clone();
        std::thread::Builder::new()
            .name("concur-signals".into())
            .stack_size(64 << 10)
            .spawn(move || {
                if sys::signal::wait(&sigs).is_ok() {
                    t.trigger();
                }
            })
            .map_err(Error::with("cannot spawn signal thread", Path::new("")))?;
        Ok(s)
    }

    /// Triggers the shutdown and wakes the server's accept loop.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let path = self.wake.lock().ok().and_then(|p| p.clone());
        if let Some(p) = path {
            let _ = std::os::unix::net::UnixStream::connect(p);
        }
    }

    /// Whether it was triggered.
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Registers the socket to connect to on trigger (a trigger that came first is replayed).
    pub(crate) fn wake_with(&self, socket: &Path) {
        if let Ok(mut w) = self.wake.lock() {
            *w = Some(socket.to_path_buf());
        }
        if self.is_triggered() {
            let _ = std::os::unix::net::UnixStream::connect(socket);
        }
    }
}
