//! Release and reliability tasks.
//!
//! - `cargo xtask dist` writes `dist/callroute-router-<version>.wasm`, the routing component
//!   exactly as the `callroute` binary embeds it (built and stamped with its metadata by the
//!   `callroute-artifact` crate), and `dist/callroute-router-<version>.wasm.sha256` in
//!   `sha256sum` format. It checks that the component's embedded version is the workspace
//!   version first.
//!   It also writes `dist/callroute-router-wit-<version>.wasm`, the contract (`wit/`) as a
//!   WIT package binary.
//! - `cargo xtask publish --registry HOST/REPO [--insecure]`: `dist`, then push the component
//!   to `HOST/REPO:<version>` and the WIT package to `HOST/REPO-wit:<version>` as OCI artifacts
//!   (one `application/wasm` layer each) with `wash oci push` (wash on PATH, or `$WASH`), and
//!   print their digests.
//! - `cargo xtask size [--top N]`: the component's size against its budget, and where the
//!   bytes go (see [`size`]).
//! - `cargo xtask bench [--calls N] [--concurrency C] [--callroute PATH] [--at-least R]
//!   [--only sandbox --seconds N]`: the side-by-side
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
        Some("dist") => dist().map(|_| ()),
        Some("publish") => publish(args),
        Some("size") => size::run(args),
        // `callroute-bench` reports its own errors.
        Some(task @ ("bench" | "load")) => return in_release_build(task, &args),
        _ => {
            eprintln!(
                "usage: cargo xtask dist | cargo xtask publish --registry HOST/REPO [--insecure] \
                 | cargo xtask size [--top N] \
                 | cargo xtask bench [--calls N] [--concurrency C] [--callroute PATH] \
                 [--remember-secs N] [--at-least R] [--only sandbox --seconds N] \
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

/// What `dist` wrote: the component and the WIT package.
struct Dist {
    component: PathBuf,
    wit: PathBuf,
}

fn dist() -> Result<Dist, String> {
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
    let digest = sha256_hex(wasm);
    let checksum = dist.join(format!("{name}.sha256"));
    std::fs::write(&checksum, format!("{digest}  {name}\n"))
        .map_err(|e| format!("{}: {e}", checksum.display()))?;

    println!("{} ({} bytes)", artifact.display(), wasm.len());
    println!("{}", checksum.display());
    println!("sha256:{digest}");

    let wit = dist.join(format!("callroute-router-wit-{version}.wasm"));
    let package = wit_package()?;
    std::fs::write(&wit, &package).map_err(|e| format!("{}: {e}", wit.display()))?;
    println!("{} ({} bytes)", wit.display(), package.len());
    Ok(Dist {
        component: artifact,
        wit,
    })
}

/// The SHA-256 of `bytes`, in lower-case hex (`sha256sum`'s, and an OCI digest's).
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The contract (`wit/`, its WASI dependencies in `wit/deps/`) as a WIT package binary.
fn wit_package() -> Result<Vec<u8>, String> {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_dir(workspace_root().join("wit"))
        .map_err(|e| format!("cannot read wit/: {e:#}"))?;
    wit_component::encode(&resolve, package).map_err(|e| format!("cannot encode wit/: {e:#}"))
}

/// `publish --registry HOST/REPO [--insecure]`: see the module docs.
fn publish(args: Vec<String>) -> Result<(), String> {
    let mut registry = None;
    let mut insecure = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--registry" if registry.is_none() => registry = args.next(),
            "--registry" => return Err("--registry is given twice".into()),
            "--insecure" => insecure = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let registry = registry.ok_or("--registry HOST/REPO is required")?;
    // A repository, not a tag, a digest or an option: `host[:port]/path`, lower case.
    let valid = registry.split_once('/').is_some_and(|(host, path)| {
        !host.is_empty()
            && !path.is_empty()
            && !registry.starts_with('-')
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
            && path
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c))
    });
    if !valid {
        return Err(format!(
            "--registry `{registry}` is not HOST[:PORT]/REPOSITORY (lower case, no tag or digest)"
        ));
    }
    let version = env!("CARGO_PKG_VERSION");
    let dist = dist()?;
    let wash = std::env::var("WASH").unwrap_or_else(|_| "wash".into());
    for (reference, file) in [
        (format!("{registry}:{version}"), &dist.component),
        (format!("{registry}-wit:{version}"), &dist.wit),
    ] {
        let mut command = std::process::Command::new(&wash);
        command.args(["oci", "push", "-o", "json"]);
        if insecure {
            command.arg("--insecure");
        }
        let out = command
            .arg(&reference)
            .arg(file)
            .output()
            .map_err(|e| format!("cannot run {wash} (install wash, or set WASH): {e}"))?;
        let said: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
        let digest = said
            .as_ref()
            .filter(|json| json["success"] == true)
            .and_then(|json| json["data"]["digest"].as_str())
            .filter(|d| {
                d.strip_prefix("sha256:").is_some_and(|hex| {
                    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
                })
            });
        // The manifest's digest (what a host pins), never the file's own, which no pull by
        // digest would find.
        let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let own = sha256_hex(&bytes);
        match digest {
            Some(digest) if out.status.success() && digest != format!("sha256:{own}") => {
                println!("{reference} {digest}")
            }
            _ => {
                return Err(format!(
                    "wash oci push {reference} ({}) did not say a manifest digest:\n{}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    Ok(())
}
