//! Single-flight from Rust: `cargo run --example once -- KEY COMMAND [ARGS]`.
//!
//! Start it several times at once with the same key: one process runs COMMAND, the others wait
//! and print its output. Each says which role it had.

use std::process::Command;
use std::time::Duration;

use concur::home::Home;
use concur::once::Once;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(key), Some(program)) = (args.next(), args.next()) else {
        eprintln!("usage: once KEY COMMAND [ARGS]");
        std::process::exit(2);
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    let home = Home::resolve()?;
    let once = Once::new(&home, &key)?.ttl(Some(Duration::from_secs(60)));
    let flight = once.run(cmd, false)?;
    print!("{}", String::from_utf8_lossy(&flight.result.stdout));
    eprintln!("role {:?}, exit {}", flight.role, flight.result.exit_code());
    std::process::exit(i32::from(flight.result.exit_code()));
}
