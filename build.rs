//! Links the `concur` binary as a non-PIE executable on Linux.
//!
//! Hooks start concur hundreds of times a minute, so start-up is part of every verb's cost. A
//! position-independent executable makes the dynamic loader apply every relative relocation at
//! each start; callgrind put that at about 40% of `concur home`'s instructions. A fixed-address
//! executable has them resolved at link time. The library and tests are unaffected.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
