//! Exit codes: one enum matching the table in README.md ("Exit codes"), and the CLI's error type.

use std::process::ExitCode;

use concur::{Error, ErrorKind};

/// How a verb ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done / won / holds.
    Ok,
    /// 1: conflict — busy, lost a race, held by another, timeout.
    Conflict,
    /// 2: usage error.
    Usage,
    /// 3: a precondition failed.
    Precondition,
    /// 4: invalid input; nothing written.
    Invalid,
    /// 74: I/O error.
    Io,
    /// 77: permission or unsafe path.
    Permission,
    /// Any other code: a wrapped command's status, a `-E` override, 128+N for a signal.
    Code(u8),
}

impl Exit {
    /// The numeric exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Conflict => 1,
            Exit::Usage => 2,
            Exit::Precondition => 3,
            Exit::Invalid => 4,
            Exit::Io => 74,
            Exit::Permission => 77,
            Exit::Code(c) => c,
        }
    }

    /// The exit status for a library error kind.
    pub fn from_kind(kind: ErrorKind) -> Exit {
        match kind {
            ErrorKind::Conflict => Exit::Conflict,
            ErrorKind::Precondition => Exit::Precondition,
            ErrorKind::Invalid => Exit::Invalid,
            ErrorKind::Permission => Exit::Permission,
            _ => Exit::Io,
        }
    }

    /// The status a child process's `ExitStatus` maps to: its code, or 128+N for signal N.
    pub fn from_status(status: std::process::ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(c), _) => Exit::Code(u8::try_from(c & 0xff).unwrap_or(1)),
            (None, Some(sig)) => Exit::Code(u8::try_from(128 + sig).unwrap_or(255)),
            _ => Exit::Code(1),
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// A verb's failure: a message and the exit status it ends with.
#[derive(Debug)]
pub struct CliError {
    /// The exit status.
    pub exit: Exit,
    /// Machine name of the error class (`--json`'s `error.kind`).
    pub kind: &'static str,
    /// The one-line message (without the `concur: <verb>: ` prefix).
    pub message: String,
}

impl CliError {
    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            exit: Exit::Usage,
            kind: "usage",
            message: message.into(),
        }
    }

    /// An invalid-input error (exit 4).
    pub fn invalid(message: impl Into<String>) -> CliError {
        CliError {
            exit: Exit::Invalid,
            kind: "invalid",
            message: message.into(),
        }
    }

    /// An error with an explicit exit status and kind.
    pub fn new(exit: Exit, kind: &'static str, message: impl Into<String>) -> CliError {
        CliError {
            exit,
            kind,
            message: message.into(),
        }
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> CliError {
        let kind = e.kind();
        CliError {
            exit: Exit::from_kind(kind),
            kind: kind.name(),
            message: e.to_string(),
        }
    }
}
