//! Release and reliability tasks.
//!
//! - `cargo xtask load [--calls N] [--concurrency C] [--callroute PATH]`: the load test (see
//!   [`load`]).
//! - `cargo xtask bench [--calls N] [--concurrency C] [--callroute PATH]`: the side-by-side
//!   benchmark (see [`bench`]). It measures release code only: run from a debug build (as the
//!   `cargo xtask` alias builds it), it builds the workspace's release binaries and hands over
//!   to `target/release/xtask`.
//! - `cargo xtask size [--top N]`: the component's size against its budget, and where the
//!   bytes go (see [`size`]).
//!
//! `cargo xtask dist` writes `dist/callroute-router-<version>.wasm`, the routing component
//! exactly as the `callroute` binary embeds it (built and stamped with its metadata by
//! `host-harness/build.rs`), and `dist/callroute-router-<version>.wasm.sha256` in `sha256sum`
//! format. It checks that the component's embedded version is the workspace version first.

mod bench;
mod load;
mod process;
mod size;

use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("dist") => match dist() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask dist: {e}");
                ExitCode::FAILURE
            }
        },
        Some("bench") if cfg!(debug_assertions) => in_release_build(),
        Some("bench") => match bench::run(std::env::args().skip(2).collect()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask bench: {e}");
                ExitCode::FAILURE
            }
        },
        Some("load") => match load::run(std::env::args().skip(2).collect()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask load: {e}");
                ExitCode::FAILURE
            }
        },
        Some("size") => match size::run(std::env::args().skip(2).collect()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask size: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!(
                "usage: cargo xtask dist | cargo xtask load [--calls N] [--concurrency C] [--callroute PATH] \
                 | cargo xtask bench [--calls N] [--concurrency C] [--callroute PATH] | cargo xtask size [--top N]"
            );
            ExitCode::from(2)
        }
    }
}

/// Build the workspace's release binaries (the harness library in `xtask` itself, and
/// `callroute` for `callroute serve`) and run this same command with the release `xtask`: a
/// benchmark of unoptimised code would measure nothing useful.
fn in_release_build() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_owned();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "xtask: building the release binaries to measure (cargo build --release --workspace --bins)"
    );
    let built = std::process::Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--release", "--workspace", "--bins"])
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("xtask: the release build failed");
        return ExitCode::FAILURE;
    }
    let status = std::process::Command::new(root.join("target/release/xtask"))
        .args(std::env::args_os().skip(1))
        .status();
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: cannot run target/release/xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dist() -> Result<(), String> {
    let version = env!("CARGO_PKG_VERSION");
    let wasm = callroute_host::EMBEDDED_PLUGIN;
    let payload = wasm_metadata::Payload::from_binary(wasm)
        .map_err(|e| format!("cannot read the component's metadata: {e}"))?;
    let embedded = payload.metadata().version.as_ref().map(ToString::to_string);
    if embedded.as_deref() != Some(version) {
        return Err(format!(
            "the component says version {embedded:?}, the workspace {version}"
        ));
    }

    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .join("dist");
    std::fs::create_dir_all(&dist).map_err(|e| format!("{}: {e}", dist.display()))?;
    let name = format!("callroute-router-{version}.wasm");
    let artifact = dist.join(&name);
    std::fs::write(&artifact, wasm).map_err(|e| format!("{}: {e}", artifact.display()))?;
    let digest: String = Sha256::digest(wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let checksum = dist.join(format!("{name}.sha256"));
    std::fs::write(&checksum, format!("{digest}  {name}\n"))
        .map_err(|e| format!("{}: {e}", checksum.display()))?;

    println!("{} ({} bytes)", artifact.display(), wasm.len());
    println!("{}", checksum.display());
    println!("sha256:{digest}");
    Ok(())
}
