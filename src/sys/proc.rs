//! Process facts from `/proc`: start times (to tell a live process from a reused pid), the
//! boot id (to tell this boot's clock readings from the last one's), the monotonic clock.

use std::io;

/// A process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
///
/// Together with the pid and [`boot_id`] it names one process for the life of the machine: a
/// reused pid has a later start time.
pub fn start_time(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_time(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/PID/stat"))
}

/// Field 22 of a `/proc/PID/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")": field 3 (state) is the first; start time is field 22, the 20th after it.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The parent pid of `pid` (field 4 of `/proc/PID/stat`).
pub fn parent_pid(pid: u32) -> io::Result<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    rest.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/PID/stat"))
}

/// The facts of one `/proc/PID/stat` line the ancestry walk needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// The command name (`comm`: the executable's base name, at most 15 bytes).
    pub comm: String,
    /// The parent pid.
    pub ppid: u32,
    /// The start time in clock ticks since boot.
    pub start_time: u64,
}

/// The command name, parent pid and start time of `pid` (one read of `/proc/PID/stat`).
pub fn stat(pid: u32) -> io::Result<Stat> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&line)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/PID/stat"))
}

fn parse_stat(line: &str) -> Option<Stat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    Some(Stat {
        comm,
        ppid: rest.get(1)?.parse().ok()?,
        start_time: rest.get(19)?.parse().ok()?,
    })
}

/// The first `max` arguments of `pid`'s command line (`/proc/PID/cmdline`, at most 4 KiB read).
pub fn cmdline(pid: u32, max: usize) -> io::Result<Vec<String>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(format!("/proc/{pid}/cmdline"))?
        .take(4096)
        .read_to_end(&mut buf)?;
    Ok(buf
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .take(max)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect())
}

/// True when `pid` is running and started at `start` (clock ticks since boot): the same process,
/// not a later one that reused the pid. Zombies count as dead.
pub fn is_alive(pid: u32, start: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    if matches!(state, Some("Z" | "X")) {
        return false;
    }
    parse_start_time(&stat) == Some(start)
}

/// The live (not zombie) processes whose process group is `pgid`, from `/proc/*/stat`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(i) = stat.rfind(')') else { continue };
        let mut f = stat[i + 1..].split_whitespace();
        // After ")": state, ppid, pgrp.
        let state = f.next();
        let pgrp = f.nth(1).and_then(|g| g.parse::<u32>().ok());
        if pgrp == Some(pgid) && !matches!(state, Some("Z" | "X")) {
            out.push(pid);
        }
    }
    out
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), trimmed.
pub fn boot_id() -> io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_owned())
}

/// `CLOCK_BOOTTIME`: monotonic, counts suspend (unlike `Instant`), restarts at each boot.
pub fn boot_clock() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut ts) };
    debug_assert_eq!(r, 0);
    let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0);
    std::time::Duration::new(ts.tv_sec.cast_unsigned(), nanos)
}

/// [`boot_clock`] in whole milliseconds (rounded down).
pub fn boot_clock_ms() -> u64 {
    u64::try_from(boot_clock().as_millis()).unwrap_or(u64::MAX)
}

/// Caps glibc's malloc arenas (`M_ARENA_MAX`): a daemon with a thread per connection keeps its
/// memory bounded instead of growing an arena per thread. No effect on other C libraries.
pub fn limit_malloc_arenas(n: i32) {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt takes two integers; M_ARENA_MAX only bounds future arena creation.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, n);
    }
    #[cfg(not(target_env = "gnu"))]
    let _ = n;
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_reads_comm_ppid_and_start_time() {
        let line = "123 (a (b) c) S 77 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 20 21";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            (s.comm.as_str(), s.ppid, s.start_time),
            ("a (b) c", 77, 424_242)
        );
        let me = stat(std::process::id()).unwrap();
        assert_eq!(me.start_time, start_time(std::process::id()).unwrap());
        assert_eq!(me.ppid, parent_pid(std::process::id()).unwrap());
        assert!(!cmdline(std::process::id(), 1).unwrap().is_empty());
    }

    #[test]
    fn start_time_parses_names_with_spaces_and_parens() {
        let line = "123 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 20 21";
        assert_eq!(parse_start_time(line), Some(424_242));
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = std::process::id();
        let st = start_time(me).unwrap();
        assert!(is_alive(me, st));
        assert!(!is_alive(me, st + 1));
    }
}
