//! Release and reliability tasks.
//!
//! - `cargo xtask dist` writes `dist/callroute-router-<version>.wasm`, the routing component
//!   exactly as the `callroute` binary embeds it (built and stamped with its metadata by the
//!   `callroute-artifact` crate), and `dist/callroute-router-<version>.wasm.sha256` in
//!   `sha256sum` format. It checks that the component's embedded version is the workspace
//!   version first.
//! - `cargo xtask size [--top N]`: the component's size against its budget, and where the
//!   bytes go (see [`size`]).
//! - `cargo xtask bench [--calls N] [--concurrency C] [--callroute PATH]`: the side-by-side
//!   benchmark, and `cargo xtask load [...]`, the load test. Both measure release code only:
//!   they build the release binaries (`callroute-bench` from `xtask/bench/`, and `callroute`
//!   for `callroute serve`) and hand over to `target/release/callroute-bench`.
//!
//! `xtask` itself links only the component (`callroute-artifact`), never the harness, so
//! `dist` and `size` do not compile wasmtime.

#[path = "../../artifact/build/component.rs"]
#[allow(
    dead_code,
    reason = "the build-script helpers of the shared nested build are not used here"
)]
mod component;
mod size;

use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let args: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("dist") => dist(),
        Some("size") => size::run(args),
        // `callroute-bench` reports its own errors.
        Some(task @ ("bench" | "load")) => return in_release_build(task, &args),
        _ => {
            eprintln!(
                "usage: cargo xtask dist | cargo xtask size [--top N] \
                 | cargo xtask bench [--calls N] [--concurrency C] [--callroute PATH] \
                 | cargo xtask load [--calls N] [--concurrency C] [--callroute PATH]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {}: {e}", task.unwrap_or_default());
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_owned()
}

/// Build the release binaries `task` measures (`callroute-bench`, which links the harness,
/// and `callroute`, for `callroute serve`) and run `task` with them: a benchmark of
/// unoptimised code would measure nothing useful.
fn in_release_build(task: &str, args: &[String]) -> ExitCode {
    match run_release_build(task, args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_release_build(task: &str, args: &[String]) -> Result<ExitCode, String> {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "xtask: building the release binaries to measure \
         (cargo build --release -p callroute-bench -p callroute-host --bins)"
    );
    let built = std::process::Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--release", "--bins"])
        .args(["-p", "callroute-bench", "-p", "callroute-host"])
        .status();
    if !built.is_ok_and(|s| s.success()) {
        return Err("the release build failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bench = target.join("release/callroute-bench");
    let status = std::process::Command::new(&bench)
        .arg(task)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", bench.display()))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn dist() -> Result<(), String> {
    let version = env!("CARGO_PKG_VERSION");
    let wasm = callroute_artifact::EMBEDDED_PLUGIN;
    let payload = wasm_metadata::Payload::from_binary(wasm)
        .map_err(|e| format!("cannot read the component's metadata: {e}"))?;
    let embedded = payload.metadata().version.as_ref().map(ToString::to_string);
    if embedded.as_deref() != Some(version) {
        return Err(format!(
            "the component says version {embedded:?}, the workspace {version}"
        ));
    }

    let dist = workspace_root().join("dist");
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
