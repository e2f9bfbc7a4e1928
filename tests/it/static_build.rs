//! The executable `cargo build` makes: statically linked and non-PIE on `x86_64` Linux with glibc
//! (`scripts/rustc-static`, the workspace rustc wrapper in `.cargo/config.toml`), the ordinary
//! build on every other host; and what the static binary still needs at run time: host names
//! resolve through glibc's NSS (`etcd://localhost:PORT`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{TestEnv, assert_code, bin, stdout};

/// The `e_type` of a 64-bit little-endian ELF file and whether it has a `PT_INTERP` header.
fn elf_kind(path: &Path) -> (u16, bool) {
    let b = std::fs::read(path).expect("read the executable");
    assert_eq!(
        &b[..6],
        b"\x7fELF\x02\x01",
        "not a 64-bit little-endian ELF"
    );
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let phoff = usize::try_from(u64::from_le_bytes(b[32..40].try_into().unwrap())).unwrap();
    let (phentsize, phnum) = (usize::from(u16_at(54)), usize::from(u16_at(56)));
    let interp = (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) == 3 // PT_INTERP
    });
    (u16_at(16), interp)
}

/// Whether the C compiler finds glibc's static archive (Debian: `libc6-dev`; Fedora:
/// `glibc-static`).
fn static_libc() -> bool {
    let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-print-file-name=libc.a")
        .output();
    out.is_ok_and(|o| o.stdout.starts_with(b"/"))
}

#[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
#[test]
fn the_concur_executable_is_static_and_not_pie_on_x86_64_glibc() {
    if !static_libc() {
        eprintln!("skipping: no static glibc (libc.a) here, so the build is the ordinary one");
        return;
    }
    let (e_type, interp) = elf_kind(&bin());
    assert_eq!(e_type, 2, "not a fixed-address executable (ET_EXEC)");
    assert!(
        !interp,
        "has a dynamic loader (PT_INTERP): not statically linked"
    );
    // And it runs: no loader, no shared libraries.
    assert_code(&TestEnv::new().run(["home"]), 0);
}

/// An executable `sh` script at `path`.
fn script(path: &Path, body: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(path)
        .expect("create the script");
    writeln!(f, "#!/bin/sh\n{body}").expect("write the script");
}

/// `scripts/rustc-static FAKE_RUSTC ARGS...` on a pretend host (the fake rustc prints `host`
/// for `-vV`, else its arguments; the fake cc finds `libc.a` or not): the arguments rustc got.
fn wrapped(host: &str, libc_a: bool, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let rustc = dir.path().join("rustc");
    let cc = dir.path().join("cc");
    let found = if libc_a { "/usr/lib/libc.a" } else { "libc.a" };
    script(
        &rustc,
        &format!("if [ \"$1\" = -vV ]; then echo 'host: {host}'; else echo \"$*\"; fi"),
    );
    script(&cc, &format!("echo {found}"));
    let wrapper = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/rustc-static");
    let o = Command::new(&wrapper)
        .arg(&rustc)
        .args(args)
        .env("CC", &cc)
        .output()
        .expect("run scripts/rustc-static");
    assert_code(&o, 0);
    stdout(&o)
}

#[test]
fn only_the_concur_executable_on_x86_64_glibc_gets_the_static_flags() {
    const FLAGS: &str = "-C target-feature=+crt-static -C relocation-model=static";
    let exe = [
        "--crate-name",
        "concur",
        "src/bin/concur/main.rs",
        "--crate-type",
        "bin",
    ];
    let gnu = "x86_64-unknown-linux-gnu";
    assert!(wrapped(gnu, true, &exe).contains(FLAGS));
    // Explicitly targeting it from another host, too.
    let mut to_gnu = exe.to_vec();
    to_gnu.extend(["--target", gnu]);
    assert!(wrapped("aarch64-apple-darwin", true, &to_gnu).contains(FLAGS));
    // Every other host builds the ordinary way.
    for host in [
        "x86_64-apple-darwin",
        "aarch64-apple-darwin",
        "x86_64-unknown-linux-musl",
        "aarch64-unknown-linux-gnu",
        "x86_64-unknown-freebsd",
    ] {
        let args = wrapped(host, true, &exe);
        assert!(!args.contains("crt-static"), "{host}: {args}");
        assert!(
            args.contains("--crate-name concur"),
            "{host}: arguments lost: {args}"
        );
    }
    // A glibc host cross-building, or without glibc's static archive.
    let mut to_musl = exe.to_vec();
    to_musl.extend(["--target", "x86_64-unknown-linux-musl"]);
    assert!(!wrapped(gnu, true, &to_musl).contains("crt-static"));
    assert!(!wrapped(gnu, false, &exe).contains("crt-static"));
    // The library, the tests and anything else named otherwise.
    let lib = [
        "--crate-name",
        "concur",
        "src/lib.rs",
        "--crate-type",
        "lib",
    ];
    assert!(!wrapped(gnu, true, &lib).contains("crt-static"));
    let test = ["--crate-name", "concur", "src/bin/concur/main.rs", "--test"];
    assert!(!wrapped(gnu, true, &test).contains("crt-static"));
    let other = ["--crate-name", "it", "--crate-type", "bin"];
    assert!(!wrapped(gnu, true, &other).contains("crt-static"));
}

/// A static glibc binary still resolves host names: `getaddrinfo` reads what glibc's NSS needs
/// (`/etc/nsswitch.conf`, `/etc/hosts`) at run time.
#[cfg(feature = "etcd")]
#[test]
fn etcd_backend_named_by_host_name_resolves() {
    use crate::etcd::verb;
    use crate::etcd_util::{Cluster, available};
    if !available("etcd_backend_named_by_host_name_resolves") {
        return;
    }
    let cl = Cluster::start(1);
    let port = cl.members[0].client_port;
    let by_name = format!("etcd://localhost:{port}");
    let t = TestEnv::new();
    let o = verb(&t, Some(&by_name), ["lock", "--name", "n", "echo", "held"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "held\n");
    // The same server: what was issued through `localhost` is taken through 127.0.0.1.
    let o = verb(
        &t,
        Some(&by_name),
        ["token", "issue", "t", "--data", r#"{"a":1}"#],
    )
    .output()
    .unwrap();
    assert_code(&o, 0);
    let o = verb(&t, Some(&cl.url()), ["token", "take", "t"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(stdout(&o).trim(), r#"{"a":1}"#);
    // A name nothing resolves is a clear error, not a hang or a crash.
    let o = verb(
        &t,
        Some("etcd://no-such-host.invalid:2379"),
        ["token", "take", "t"],
    )
    .output()
    .unwrap();
    assert!(o.status.code().is_some_and(|c| c != 0 && c != 101), "{o:?}");
}
