//! Multi-call: invoked as `lockf`, the binary is FreeBSD's lockf(1):
//! `lockf [-knsw] [-t seconds] file command [arguments]` and `lockf [-s] [-t seconds] fd`.
//! The engine is [`super`]; this is the program (its argument parsing), so that any binary can
//! be a drop-in `lockf` by calling [`main`].

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{Plan, execute};

const EX_USAGE: u8 = 64;

fn usage() -> ExitCode {
    eprintln!(
        "usage: lockf [-knsw] [-t seconds] file command [arguments]\n       lockf [-s] [-t seconds] fd"
    );
    ExitCode::from(EX_USAGE)
}

/// Runs as lockf(1) with `args` (without `argv[0]`).
pub fn main(args: &[OsString]) -> ExitCode {
    let mut o = Plan {
        keep: false,
        create: true,
        silent: false,
        write: false,
        wait: None,
        name: PathBuf::new(),
        fd: None,
        command: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_bytes();
        if a == b"--" {
            i += 1;
            break;
        }
        if a.len() < 2 || a[0] != b'-' {
            break;
        }
        let mut j = 1;
        while j < a.len() {
            match a[j] {
                b'k' => o.keep = true,
                b'n' => o.create = false,
                b's' => o.silent = true,
                b'w' => o.write = true,
                b't' => {
                    let v = if j + 1 < a.len() {
                        String::from_utf8_lossy(&a[j + 1..]).into_owned()
                    } else {
                        i += 1;
                        let Some(v) = args.get(i) else {
                            eprintln!("lockf: option requires an argument -- t");
                            return usage();
                        };
                        v.to_string_lossy().into_owned()
                    };
                    match v.parse::<u64>() {
                        Ok(n) if u32::try_from(n).is_ok() && !v.starts_with('+') => {
                            o.wait = Some(n);
                        }
                        _ => {
                            eprintln!("lockf: invalid timeout \"{v}\"");
                            return ExitCode::from(EX_USAGE);
                        }
                    }
                    break;
                }
                c => {
                    eprintln!("lockf: illegal option -- {}", c as char);
                    return usage();
                }
            }
            j += 1;
        }
        i += 1;
    }
    let rest = &args[i..];
    let Some((lockname, command)) = rest.split_first() else {
        return usage();
    };
    let name_bytes = lockname.as_bytes();
    let fd_form: Option<i32> = if command.is_empty() && !name_bytes.starts_with(b"/") {
        match lockname.to_string_lossy().parse::<i32>() {
            Ok(fd) if fd >= 0 => Some(fd),
            Ok(fd) => {
                eprintln!("fd '{fd}' out of range");
                return usage();
            }
            Err(_) => {
                eprintln!("Expected fd, got '{}'", lockname.to_string_lossy());
                return usage();
            }
        }
    } else if let Some(n) = name_bytes.strip_prefix(b"/dev/fd/") {
        std::str::from_utf8(n)
            .ok()
            .and_then(|s| s.parse::<i32>().ok())
    } else {
        if command.is_empty() {
            eprintln!("Expected fd, got '{}'", lockname.to_string_lossy());
            return usage();
        }
        None
    };
    o.name = PathBuf::from(lockname);
    o.fd = fd_form;
    o.command = command.to_vec();
    ExitCode::from(execute(&o))
}
