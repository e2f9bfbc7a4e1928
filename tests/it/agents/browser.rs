//! A would-be singleton MCP server started by two live sessions in one checkout from the same MCP
//! configuration: Playwright MCP (npm, pinned in scripts/agents) driving the system's Chromium.
//!
//! Control: the configuration gives the server a fixed `--user-data-dir`, as users write it; the
//! second session's browser cannot start ("Browser is already in use"). Then the same server
//! wrapped in `concur isolate` with `--user-data-dir {session_dir}/browser`, as docs/isolate.md
//! shows: each session gets its own profile and both browse.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::scenario::{Checks, Script, calls, hold, results, text};
use super::{Agent, Lab, Model, installed, show, skip};

/// The `scripts/agents` entry of Playwright MCP.
const PLAYWRIGHT_MCP: (&str, &str) = ("playwright-mcp-0.0.86", "playwright-mcp");

/// What Playwright MCP says when the profile it was given is held by another browser.
const IN_USE: &str = "Browser is already in use";

/// An agent the suite can give a stdio MCP server.
pub trait Mcp: Agent {
    /// Configures the stdio MCP server `name`, started as `argv`, for every session in `lab`, the
    /// way a user does (the checkout's or the user's MCP configuration), its tools allowed.
    fn mcp_server(&self, lab: &Lab, name: &str, argv: &[String]);
    /// A call of the MCP server `server`'s tool `tool`, in the script's form.
    fn mcp_call(&self, server: &str, tool: &str, input: Value) -> Value;
    /// For an agent that may ask its model before its MCP servers are up: the turn the model
    /// answers with until a request offers the server's tools (the agent then asks again).
    /// `None` for agents that wait for their servers, or that do not list MCP tools in their
    /// requests at all (Claude Code 2.1.328 defers them, and still runs a call of one).
    fn mcp_pending(&self) -> Option<Value> {
        None
    }
    /// What the server's command is prefixed with in the configuration to run it through
    /// `concur isolate` (as docs/isolate.md says for this agent).
    fn isolate(&self) -> Vec<String> {
        ["concur", "isolate", "--"].map(String::from).to_vec()
    }
}

/// Chromium from the system's packages (Debian's `chromium`), or `None` (skipped; a failure in
/// CI) when it is not installed.
fn chromium() -> Option<PathBuf> {
    let found = ["/usr/local/bin", "/usr/bin", "/bin"]
        .iter()
        .flat_map(|d| ["chromium", "chromium-browser"].map(|b| Path::new(d).join(b)))
        .find(|p| p.exists());
    if found.is_none() {
        skip("Chromium is not installed (Debian's `chromium` package; scripts/test installs it)");
    }
    found
}

/// The Playwright MCP command line for one server: headless, on the system's Chromium, without
/// Chromium's sandbox (it cannot start as root or where user namespaces are restricted), with
/// the profile `profile`.
fn playwright(mcp: &Path, chromium: &Path, profile: &str) -> Vec<String> {
    [
        mcp.to_str().unwrap(),
        "--headless",
        "--no-sandbox",
        "--executable-path",
        chromium.to_str().unwrap(),
        "--user-data-dir",
        profile,
    ]
    .map(String::from)
    .to_vec()
}

/// The two ways the server is configured, each in its own lab (checkout, agent home, concur
/// home): name, the session names' prefix.
const SETUPS: [&str; 2] = ["fixed", "isolated"];

/// One lab per setup, the server configured and concur's hooks installed as the docs say.
fn labs<A: Mcp>(agent: &A, cli: &Path, mcp: &Path, chromium: &Path) -> Vec<Lab> {
    let labs: Vec<Lab> = SETUPS
        .iter()
        .map(|_| Lab::new(agent, cli.to_path_buf()))
        .collect();
    let (fixed, isolated) = (&labs[0], &labs[1]);
    let shared = fixed.dir.path().join("browser-profile");
    agent.mcp_server(
        fixed,
        "playwright",
        &playwright(mcp, chromium, shared.to_str().unwrap()),
    );
    let mut wrapped = agent.isolate();
    wrapped.extend(playwright(mcp, chromium, "{session_dir}/browser"));
    agent.mcp_server(isolated, "playwright", &wrapped);
    for lab in &labs {
        lab.install_hooks(agent);
    }
    labs
}

/// Two sessions per setup, A (alive, its browser open, while B browses) and B; both setups at
/// once.
pub fn singleton_mcp<A: Mcp>(agent: &A, cli: &Path) {
    let (Some(mcp), Some(chromium)) = (
        installed("Playwright MCP", PLAYWRIGHT_MCP.0, PLAYWRIGHT_MCP.1),
        chromium(),
    ) else {
        return;
    };
    let labs = labs(agent, cli, &mcp, &chromium);

    let mut script = serde_json::Map::new();
    // every session's navigate and snapshot turns are at the same places: `turns` finds them
    let mut turns = Script::default();
    for setup in SETUPS {
        for s in ["A", "B"] {
            let name = format!("{setup}-{s}");
            turns = browse(agent, &name, s == "A");
            script.insert(name, turns.json());
        }
    }
    let model = Model::start(labs[0].dir.path(), &Value::Object(script));
    // all four start at once; each B's first call waits until A's browser is open
    let start = |s: &str| -> Vec<_> {
        SETUPS
            .iter()
            .zip(&labs)
            .map(|(setup, lab)| lab.start(agent, &model, &format!("{setup}-{s}")))
            .collect()
    };
    let (a, b) = (start("A"), start("B"));
    for setup in SETUPS {
        model.wait(&format!("{setup}-A"), "live");
    }
    let mut ck = Checks::new(agent);
    let isolates = labs[1].home.join("isolate");
    let running = processes_naming(&isolates);
    // Chromium's own command line (`--user-data-dir=DIR`), not the server's
    let in_session_dir = |dir: &Path| {
        dir.file_name() == Some("browser".as_ref())
            && dir.parent().and_then(Path::parent) == Some(isolates.as_path())
    };
    ck.check(
        "concur isolate: A's browser runs on a profile in A's session directory",
        running
            .iter()
            .flat_map(|c| c.split(' '))
            .filter_map(|a| a.strip_prefix("--user-data-dir="))
            .any(|d| in_session_dir(Path::new(d))),
        format!("processes naming {}: {running:?}", isolates.display()),
    );
    for setup in SETUPS {
        model.release(&format!("{setup}-B"), "go");
    }
    for (run, setup) in b.into_iter().zip(SETUPS) {
        let out = run.finish();
        ck.check(
            &format!("{setup}: B exits normally"),
            out.status.success(),
            show(&out),
        );
    }
    for (run, setup) in a.into_iter().zip(SETUPS) {
        model.release(&format!("{setup}-A"), "live");
        let out = run.finish();
        ck.check(
            &format!("{setup}: A exits normally"),
            out.status.success(),
            show(&out),
        );
    }
    browsed(&mut ck, &model, &turns, &labs[1]);
    let left = gone(&isolates);
    ck.check(
        "concur isolate: no browser left once the sessions end",
        left.is_empty(),
        format!("still running: {left:?}"),
    );
    ck.finish();
}

/// What each session's browser did, from the tool results its agent sent back, and the
/// profiles under the isolated lab's concur home.
fn browsed(ck: &mut Checks, model: &Model, turns: &Script, isolated: &Lab) {
    let browsed = |name: &str| {
        let t = model.turns(name);
        let nav = results(&t, turns.at("navigate"));
        let snap = results(&t, turns.at("snapshot"));
        (nav.first().cloned(), snap.first().cloned())
    };
    // the page's title after navigating; its heading in the snapshot
    let has = |r: &Option<Value>, what: &str| {
        r.as_ref().is_some_and(|r| {
            !r["error"].as_bool().unwrap_or(false)
                && r["output"].as_str().is_some_and(|o| o.contains(what))
        })
    };
    let ok = |(nav, snap): &(Option<Value>, Option<Value>), name: &str| {
        has(nav, &format!("Page Title: {name}")) && has(snap, &format!("heading \"page {name}\""))
    };
    let in_use = |r: &Option<Value>| {
        r.as_ref()
            .is_some_and(|r| r["output"].as_str().is_some_and(|o| o.contains(IN_USE)))
    };
    let r = browsed("fixed-A");
    ck.check(
        "fixed profile: A navigates and snapshots its page",
        ok(&r, "fixed-A"),
        format!("{r:?}"),
    );
    let (nav, snap) = browsed("fixed-B");
    ck.check(
        &format!("fixed profile: B, while A's browser is open, gets \"{IN_USE}\""),
        in_use(&nav) && in_use(&snap),
        format!("{nav:?} / {snap:?}"),
    );
    for s in ["A", "B"] {
        let name = format!("isolated-{s}");
        let r = browsed(&name);
        ck.check(
            &format!("concur isolate: {s} navigates and snapshots its own page"),
            ok(&r, &name),
            format!("{r:?}"),
        );
    }
    let profiles = profiles(&isolated.home);
    ck.check(
        "concur isolate: one browser profile per session, under the session's directory",
        profiles.len() == 2,
        format!("profiles in use: {profiles:?}"),
    );
}

/// One session's script: navigate to its own page (served by the model server), snapshot it.
/// With `stay` (A) the session then stays alive, its browser open, until the test releases it;
/// without (B) it navigates only once the test releases it.
fn browse(agent: &impl Mcp, name: &str, stay: bool) -> Script {
    let call = |tool, input| calls([agent.mcp_call("playwright", tool, input)]);
    let mut navigate = call(
        "browser_navigate",
        json!({ "url": format!("{{server}}/_ctl/page/{name}") }),
    );
    if let Some(wait) = agent.mcp_pending() {
        navigate["meanwhile"] = wait;
    }
    if !stay {
        navigate = hold("go", navigate);
    }
    let mut s = Script::default();
    s.push("navigate", navigate)
        .push("snapshot", call("browser_snapshot", json!({})));
    if stay {
        s.push("live", hold("live", text("done")));
    } else {
        s.push("done", text("done"));
    }
    s
}

/// The Chromium profiles under `$CONCUR_HOME/isolate/<session>/browser` that a browser used.
fn profiles(home: &Path) -> Vec<PathBuf> {
    let Ok(dirs) = std::fs::read_dir(home.join("isolate")) else {
        return Vec::new();
    };
    dirs.filter_map(|d| Some(d.ok()?.path().join("browser")))
        .filter(|p| p.join("Local State").exists())
        .collect()
}

/// The command lines of the running processes that name `path` (a zombie has none).
fn processes_naming(path: &Path) -> Vec<String> {
    let path = path.to_str().unwrap();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|p| std::fs::read(p.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(path))
        .collect()
}

/// Once the agents have exited, their `concur isolate`s stop their servers' process groups
/// (stdin closed, parent gone): waits for the processes naming `path` to go, at most 30 s, and
/// returns those still there.
fn gone(path: &Path) -> Vec<String> {
    let start = Instant::now();
    loop {
        let left = processes_naming(path);
        if left.is_empty() || start.elapsed() > Duration::from_secs(30) {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
