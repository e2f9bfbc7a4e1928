//! Links the `concur` binary as a non-PIE executable on Linux.
//!
//! Hooks start concur hundreds of times a minute, so start-up is part of every verb's cost. A
//! position-independent executable makes the dynamic loader apply every relative relocation at
//! each start; callgrind put that at about 40% of `concur home`'s instructions. A fixed-address
//! executable has them resolved at link time. The library and tests are unaffected.
//!
//! On `x86_64` Linux with glibc the binary is also linked statically: `scripts/rustc-static`, the
//! workspace rustc wrapper set in `.cargo/config.toml`, gives the `concur` executable
//! `-C target-feature=+crt-static -C relocation-model=static` (no dynamic loader at all). Those
//! flags reach that one rustc invocation only, so `CARGO_CFG_TARGET_FEATURE` does not show
//! `crt-static` here and `-no-pie` is still passed, which is harmless for a static non-PIE link.
//! When `crt-static` does show (e.g. from `RUSTFLAGS`) without a static relocation model, rustc
//! makes a static-PIE, which `-no-pie` would break, so it is not added then.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let crt_static = features.split(',').any(|f| f == "crt-static");
    if os == "linux" && !crt_static {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
