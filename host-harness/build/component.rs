// Shared by the build scripts that build wasm components (`host-harness/build.rs` builds the
// routing component, `tests/build.rs` the hostile test guests); each `include!`s this file.
//
// In the manner of wasmtime's `crates/test-programs/artifacts/build.rs`:
// - a nested `cargo build` with its own target directory (under `OUT_DIR`), so it never
//   contends for the outer build's lock and never mixes host and wasm artifacts;
// - no inherited `RUSTFLAGS`: flags meant for the host (`-C target-cpu=native`, sanitizers)
//   must not leak into the wasm build; the only flags remap the workspace and cargo's home
//   (panic locations in dependencies carry their paths), so the component is the same bytes
//   wherever the source and the registry live;
// - `rerun-if-changed` on every input;
// - if the toolchain lacks the `wasm32-wasip2` target it is added with rustup, or the build
//   fails with the exact command to run.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// The workspace root (the parent of the crate being built).
fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    manifest_dir.parent().expect("crates live in the workspace root").to_owned()
}

/// Build `package`'s cdylib for `wasm32-wasip2` and return the component's path.
/// `inputs` (relative to the workspace root) are watched for changes.
fn build_component(package: &str, inputs: &[&str]) -> PathBuf {
    let root = workspace_root();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    for input in inputs.iter().chain(&["wit", "Cargo.lock", "Cargo.toml"]) {
        rerun_if_changed(&root.join(input));
    }
    println!("cargo:rerun-if-env-changed=CALLROUTE_PLUGIN_PROFILE");
    println!("cargo:rerun-if-env-changed=CARGO_HOME");
    ensure_target();

    let profile = env::var("CALLROUTE_PLUGIN_PROFILE").unwrap_or_else(|_| "plugin".into());
    let target_dir = out_dir.join("wasm-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--package", package, "--lib"])
        .args(["--target", TARGET, "--profile", &profile])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", remapped_paths(&root))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_LLVM_COV")
        .env_remove("CARGO_PRIMARY_PACKAGE");
    if env::var_os("CARGO_NET_OFFLINE").is_some() {
        cmd.arg("--offline");
    }
    let status = cmd.status().expect("failed to run cargo to build a wasm component");
    assert!(
        status.success(),
        "building the component (cargo build -p {package} --target {TARGET}) failed"
    );
    let wasm = target_dir
        .join(TARGET)
        .join(&profile)
        .join(format!("{}.wasm", package.replace('-', "_")));
    assert!(wasm.exists(), "the component was not produced at {}", wasm.display());
    wasm
}

/// `--remap-path-prefix` flags (as `CARGO_ENCODED_RUSTFLAGS`) that replace the workspace's
/// and cargo's home's paths with fixed ones.
fn remapped_paths(root: &Path) -> String {
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let mut flags = vec![format!("--remap-path-prefix={}=/callroute", root.display())];
    if let Some(home) = cargo_home {
        flags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    flags.join("\u{1f}")
}

fn rerun_if_changed(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            rerun_if_changed(&entry.path());
        }
    }
}

/// Make sure the active toolchain can build for `wasm32-wasip2`, adding the target if needed.
fn ensure_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = |sysroot: &Path| {
        sysroot
            .join("lib/rustlib")
            .join(TARGET)
            .join("lib")
            .is_dir()
    };
    if sysroot.as_deref().is_some_and(installed) {
        return;
    }
    let toolchain = env::var("RUSTUP_TOOLCHAIN").ok();
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", TARGET]);
    if let Some(toolchain) = &toolchain {
        cmd.args(["--toolchain", toolchain]);
    }
    let added = cmd.status().map(|s| s.success()).unwrap_or(false);
    let hint = match &toolchain {
        Some(t) => format!("rustup target add {TARGET} --toolchain {t}"),
        None => format!("rustup target add {TARGET}"),
    };
    assert!(
        added && sysroot.as_deref().is_some_and(installed),
        "the Rust target {TARGET} is missing and could not be added automatically; run:\n    {hint}"
    );
}
