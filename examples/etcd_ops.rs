//! In-process throughput of the etcd primitives: `etcd_ops URL OP N` runs OP N times in a row
//! and prints one JSON line (ops/s, mean µs). Used by `bench/etcd.sh`, which starts the servers.
//!
//! OPs: `put` (raw put, the floor), `lock` (lock + unlock), `slot` (acquire + release of 1 of 4),
//! `token` (issue + take), `session` (register + end); `lock-pooled` and `slot-pooled` are `lock`
//! and `slot` with a lease pool in a scratch home (as the CLI holds them): no grant or revoke.

use std::time::{Duration, Instant};

use concur::etcd::{Client, Pool, Wait, lock, semaphore, session, token};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, op, n] = args.as_slice() else {
        return Err(
            "usage: etcd_ops URL put|lock|slot|token|session|lock-pooled|slot-pooled N".into(),
        );
    };
    let n: u32 = n.parse()?;
    let ttl = Duration::from_secs(10);
    let scratch = tempfile::tempdir()?;
    let c = Client::new(url)?;
    let (pool, op) = match op.strip_suffix("-pooled") {
        Some(base) => {
            let home = concur::Home::at(scratch.path())?;
            (Some(Pool::open(&home, &c, ttl)?), base)
        }
        None => (None, op.as_str()),
    };
    let pool = pool.as_ref();
    let me = concur::lock::Holder::me(None, None);
    let sid = concur::SessionId::new("bench")?;
    let info = serde_json::json!({ "pid": std::process::id() });
    // One warm-up round opens the connection.
    c.put(b"concur/bench/warm", b"1", 0)?;
    // Token takes are audited in a home, as every take is.
    let home = concur::Home::at(scratch.path().join("home"))?;
    let start = Instant::now();
    for i in 0..n {
        match op {
            "put" => {
                c.put(b"concur/bench/k", i.to_string().as_bytes(), 0)?;
            }
            "lock" => lock::lock(&c, pool, "bench", ttl, Wait::Forever, &me)?
                .ok_or("busy")?
                .unlock()?,
            "slot" => semaphore::acquire(&c, pool, "bench", 4, ttl, Wait::Forever, &me)?
                .ok_or("busy")?
                .release()?,
            "token" => {
                token::issue(&c, "bench", &serde_json::json!(i), None, None, false)?;
                token::take(&c, &home, "bench", None)?;
            }
            "session" => session::register(&c, &sid, &info, ttl)?.end()?,
            other => return Err(format!("unknown op {other}").into()),
        }
    }
    let el = start.elapsed();
    println!(
        "{}",
        serde_json::json!({
            "op": args[2],
            "n": n,
            "ops_per_s": (f64::from(n) / el.as_secs_f64()).round(),
            "mean_us": (el.as_secs_f64() * 1e6 / f64::from(n)).round(),
        })
    );
    Ok(())
}
