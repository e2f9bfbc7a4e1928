//! The runtime home and session ids, through the binary.

use std::os::unix::fs::PermissionsExt;

use crate::util::*;

#[test]
fn home_is_created_private() {
    let t = TestEnv::new();
    let o = t.run(["home"]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o).trim(), t.home.to_str().unwrap());
    let mode = std::fs::metadata(&t.home).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn world_writable_home_is_refused_with_77() {
    let t = TestEnv::new();
    std::fs::create_dir(&t.home).unwrap();
    std::fs::set_permissions(&t.home, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = t.run(["home", "--json"]);
    assert_code(&o, 77);
    let err = stderr(&o);
    assert!(
        err.starts_with("concur: home: refusing runtime home"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["kind"], "permission");
}

#[test]
fn barrier_starts_processes_together() {
    let t = TestEnv::new();
    let mut b = Barrier::new();
    for _ in 0..8 {
        b.spawn(&t.cmd(["home"]));
    }
    for o in b.run_all() {
        assert_code(&o, 0);
    }
}
