//! Multi-call: invoked as `flock`, the binary is util-linux flock(1) (2.41): the same option
//! parsing (`getopt_long` with `+`: options stop at the first operand; unambiguous long-option
//! prefixes), the same messages prefixed `flock:`, the same exit codes (1 or `-E` on conflict
//! or timeout, 64 usage, 65 lock error, 66/71/73 open errors, 69 exec failure, the command's
//! status or 128+N). The lock file is created 0666 (before the umask), symlinks are followed,
//! and the command inherits the lock descriptor unless `-o` — all as flock(1) does.
//!
//! The engine is [`super`]; this is the program: its argument parsing and messages, so that
//! any binary can be a drop-in `flock` by calling [`main`].
//!
//! One deliberate difference: the lock file is opened non-blocking, so a FIFO at the lock path
//! is locked like any inode instead of hanging in `open(2)`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{Dialect, Plan, Target, execute, parse_secs, print_line};
use crate::lock::{Api, Mode, Range};

const LONG: &[(&str, bool, char)] = &[
    ("shared", false, 's'),
    ("exclusive", false, 'x'),
    ("unlock", false, 'u'),
    ("nonblocking", false, 'n'),
    ("nb", false, 'n'),
    ("timeout", true, 'w'),
    ("wait", true, 'w'),
    ("conflict-exit-code", true, 'E'),
    ("close", false, 'o'),
    ("no-fork", false, 'F'),
    ("verbose", false, '0'),
    ("fcntl", false, '1'),
    ("start", true, '2'),
    ("length", true, '3'),
    ("help", false, 'h'),
    ("version", false, 'V'),
];

fn usage_error(msg: &str) -> ExitCode {
    if !msg.is_empty() {
        eprintln!("flock: {msg}");
    }
    eprintln!("Try 'flock --help' for more information.");
    ExitCode::from(64)
}

fn plain_error(msg: &str) -> ExitCode {
    eprintln!("flock: {msg}");
    ExitCode::from(64)
}

fn help() -> ExitCode {
    print_line(
        "\nUsage:\n flock [options] <file>|<directory> <command> [<argument>...]\n \
         flock [options] <file>|<directory> -c <command>\n flock [options] <file descriptor number>\n\n\
         Manage file locks from shell scripts.\n\nOptions:\n \
         -s, --shared             get a shared lock\n \
         -x, --exclusive          get an exclusive lock (default)\n \
         -u, --unlock             remove a lock\n \
         -n, --nonblock           fail rather than wait\n \
         -w, --timeout <secs>     wait for a limited amount of time\n \
         -E, --conflict-exit-code <number>  exit code after conflict or timeout\n \
         -o, --close              close file descriptor before running command\n \
         -c, --command <command>  run a single command string through the shell\n \
         -F, --no-fork            execute command without forking\n     \
         --fcntl              use fcntl(F_OFD_SETLK) rather than flock()\n     \
         --start <offset>     starting offset for lock (implies --fcntl)\n     \
         --length <number>    number of bytes to lock (implies --fcntl)\n     \
         --verbose            increase verbosity\n\n \
         -h, --help               display this help\n \
         -V, --version            display version\n\n\
         This is concur's flock(1)-compatible mode (see `concur lock --help`).",
    );
    ExitCode::SUCCESS
}

/// Runs as flock(1) with `args` (without `argv[0]`).
#[allow(clippy::too_many_lines)] // one getopt loop and flock's operand rules, kept in order
pub fn main(args: &[OsString]) -> ExitCode {
    if args.is_empty() {
        eprintln!("flock: not enough arguments");
        return usage_error("");
    }
    let mut mode = Some(Mode::Exclusive);
    let mut nonblock = false;
    let mut timeout = None;
    let mut conflict: u8 = 1;
    let mut close = false;
    let mut no_fork = false;
    let mut verbose = false;
    let mut fcntl = false;
    let (mut start, mut length) = (0u64, 0u64);
    let mut i = 0;
    // (option char, its argument) pairs, in order, as getopt_long would return them.
    let mut opts: Vec<(char, Option<OsString>)> = Vec::new();
    while i < args.len() {
        let a = args[i].as_bytes();
        if a == b"--" {
            i += 1;
            break;
        }
        if a.len() < 2 || a[0] != b'-' {
            break; // '+': the first operand ends the options
        }
        if let Some(long) = a.strip_prefix(b"--") {
            let (name, inline) = match long.iter().position(|&b| b == b'=') {
                Some(p) => (
                    &long[..p],
                    Some(OsString::from(std::ffi::OsStr::from_bytes(&long[p + 1..]))),
                ),
                None => (long, None),
            };
            let name_s = String::from_utf8_lossy(name).into_owned();
            let exact: Vec<_> = LONG.iter().filter(|(n, ..)| n.as_bytes() == name).collect();
            let cands: Vec<_> = if exact.is_empty() {
                LONG.iter()
                    .filter(|(n, ..)| n.as_bytes().starts_with(name))
                    .collect()
            } else {
                exact
            };
            let distinct = {
                let mut c: Vec<char> = cands.iter().map(|(_, _, c)| *c).collect();
                c.dedup();
                c.len()
            };
            if cands.is_empty() {
                return usage_error(&format!("unrecognized option '--{name_s}'"));
            }
            if distinct > 1 {
                let poss: Vec<String> = cands.iter().map(|(n, ..)| format!("'--{n}'")).collect();
                return usage_error(&format!(
                    "option '--{name_s}' is ambiguous; possibilities: {}",
                    poss.join(" ")
                ));
            }
            let (full, takes, c) = *cands[0];
            if takes {
                let v = if let Some(v) = inline {
                    v
                } else {
                    i += 1;
                    let Some(v) = args.get(i) else {
                        return usage_error(&format!("option '--{full}' requires an argument"));
                    };
                    v.clone()
                };
                opts.push((c, Some(v)));
            } else {
                if inline.is_some() {
                    return usage_error(&format!("option '--{full}' doesn't allow an argument"));
                }
                opts.push((c, None));
            }
            i += 1;
            continue;
        }
        // A cluster of short options.
        let mut j = 1;
        while j < a.len() {
            let c = a[j] as char;
            match c {
                's' | 'e' | 'x' | 'n' | 'o' | 'F' | 'u' | 'h' | 'V' => opts.push((c, None)),
                'w' | 'E' => {
                    let v = if j + 1 < a.len() {
                        OsString::from(std::ffi::OsStr::from_bytes(&a[j + 1..]))
                    } else {
                        i += 1;
                        match args.get(i) {
                            Some(v) => v.clone(),
                            None => {
                                return usage_error(&format!(
                                    "option requires an argument -- '{c}'"
                                ));
                            }
                        }
                    };
                    opts.push((c, Some(v)));
                    break;
                }
                _ => return usage_error(&format!("invalid option -- '{c}'")),
            }
            j += 1;
        }
        i += 1;
    }
    for (c, v) in opts {
        let v = v
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default();
        match c {
            's' => mode = Some(Mode::Shared),
            'e' | 'x' => mode = Some(Mode::Exclusive),
            'u' => mode = None,
            'o' => close = true,
            'F' => no_fork = true,
            'n' => nonblock = true,
            'w' => match parse_secs(&v) {
                Some(d) => timeout = Some(d),
                None => return plain_error(&format!("invalid timeout value: '{v}'")),
            },
            'E' => match v.trim().parse::<i64>() {
                Ok(n) if (0..=255).contains(&n) => conflict = u8::try_from(n).unwrap_or(1),
                Ok(n) if i32::try_from(n).is_ok() => {
                    return plain_error("exit code out of range (expected 0 to 255)");
                }
                _ => return plain_error(&format!("invalid exit code: '{v}'")),
            },
            '0' => verbose = true,
            '1' => fcntl = true,
            '2' => match v.trim().parse() {
                Ok(n) => {
                    start = n;
                    fcntl = true;
                }
                Err(_) => return plain_error(&format!("invalid as start offset: '{v}'")),
            },
            '3' => match v.trim().parse() {
                Ok(n) => {
                    length = n;
                    fcntl = true;
                }
                Err(_) => return plain_error(&format!("invalid as lenght of lock range: '{v}'")),
            },
            'V' => {
                print_line(&format!(
                    "flock from concur {} (util-linux 2.41 compatible)",
                    env!("CARGO_PKG_VERSION")
                ));
                return ExitCode::SUCCESS;
            }
            'h' => return help(),
            _ => unreachable!("only parsed options reach here"),
        }
    }
    if no_fork && close {
        return plain_error("the --no-fork and --close options are incompatible");
    }
    let rest = &args[i..];
    let (target, argv, shell_command) = if rest.len() > 1 {
        if rest[1] == "-c" || rest[1] == "--command" {
            if rest.len() != 3 {
                return plain_error(&format!(
                    "{} requires exactly one command argument",
                    rest[1].to_string_lossy()
                ));
            }
            (
                Target::Path(PathBuf::from(&rest[0])),
                Vec::new(),
                Some(rest[2].clone()),
            )
        } else {
            (
                Target::Path(PathBuf::from(&rest[0])),
                rest[1..].to_vec(),
                None,
            )
        }
    } else if let Some(fd) = rest.first() {
        let s = fd.to_string_lossy();
        match s.trim().parse::<i32>() {
            Ok(n) => (Target::Fd(n), Vec::new(), None),
            Err(_) => return plain_error(&format!("bad file descriptor: '{s}'")),
        }
    } else {
        return plain_error("requires file descriptor, file or directory");
    };
    let plan = Plan {
        dialect: Dialect::Flock,
        target,
        mode,
        api: if fcntl {
            Api::Ofd(Range { start, len: length })
        } else {
            Api::Flock
        },
        nonblock,
        timeout,
        conflict_code: conflict,
        close,
        no_fork,
        verbose,
        quiet: true,
        argv,
        shell_command,
        max_hold: None,
        pass_fd: None,
        json: false,
        session: None,
    };
    match execute(&plan, None) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("flock: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}
