// The one nested build of a wasm component, shared by everything that builds one: the
// artifact crate's `build.rs` (the routing component), `tests/build.rs` (the hostile test
// guests) and `cargo xtask size` (the routing component with its names kept). Build scripts
// `include!` this file; xtask mounts it as a module.
//
// In the manner of wasmtime's `crates/test-programs/artifacts/build.rs`:
// - a nested `cargo rustc --crate-type cdylib` with its own target directory, so it never
//   contends for the outer build's lock and never mixes host and wasm artifacts; the crate
//   type is chosen here, so the plugin's manifest declares only the rlib its native
//   dependents link (a cdylib in the manifest would be linked natively for nothing);
// - no inherited `RUSTFLAGS`: flags meant for the host (`-C target-cpu=native`, sanitizers)
//   must not leak into the wasm build; the only flags remap the workspace and cargo's home
//   (panic locations in dependencies carry their paths), so the component is the same bytes
//   wherever the source and the registry live;
// - `rerun-if-changed` on every input (build scripts only);
// - if the toolchain lacks the `wasm32-wasip2` target it is added with rustup, or the build
//   fails with the exact command to run.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every component is built for.
pub(crate) const TARGET: &str = "wasm32-wasip2";

/// One nested component build.
pub(crate) struct ComponentBuild<'a> {
    /// The workspace root.
    root: PathBuf,
    /// The package whose library becomes the component.
    package: &'a str,
    /// The cargo profile (`plugin` for the release artifact).
    profile: String,
    /// The nested build's own target directory.
    target_dir: PathBuf,
    /// Profile settings overridden for this build, as `CARGO_PROFILE_<NAME>_<KEY>` variables.
    overrides: Vec<(String, String)>,
}

impl<'a> ComponentBuild<'a> {
    /// Build `package` with `profile` into `target_dir`, from the workspace at `root`.
    pub(crate) fn new(root: &Path, package: &'a str, profile: &str, target_dir: PathBuf) -> Self {
        ComponentBuild {
            root: root.to_owned(),
            package,
            profile: profile.to_owned(),
            target_dir,
            overrides: Vec::new(),
        }
    }

    #[allow(dead_code, reason = "only `cargo xtask size` overrides the profile")]
    /// Override one setting of the profile (`key` as cargo spells it in an environment
    /// variable: `STRIP`, `DEBUG`…).
    pub(crate) fn profile_setting(mut self, key: &str, value: &str) -> Self {
        let profile = self.profile.to_uppercase().replace('-', "_");
        self.overrides
            .push((format!("CARGO_PROFILE_{profile}_{key}"), value.to_owned()));
        self
    }

    /// For a build script: rerun it when any of `inputs` (relative to the workspace root), the
    /// WIT or the manifests change.
    pub(crate) fn watch(&self, inputs: &[&str]) {
        for input in inputs.iter().chain(&["wit", "Cargo.lock", "Cargo.toml"]) {
            rerun_if_changed(&self.root.join(input));
        }
        println!("cargo:rerun-if-env-changed=CALLROUTE_PLUGIN_PROFILE");
        println!("cargo:rerun-if-env-changed=CARGO_HOME");
    }

    /// Run the build; returns the component's path.
    pub(crate) fn run(&self) -> Result<PathBuf, String> {
        ensure_target()?;
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&self.root)
            .args([
                "rustc",
                "--package",
                self.package,
                "--lib",
                "--crate-type",
                "cdylib",
            ])
            .args(["--target", TARGET, "--profile", &self.profile])
            .env("CARGO_TARGET_DIR", &self.target_dir)
            .env("CARGO_ENCODED_RUSTFLAGS", remapped_paths(&self.root))
            .envs(self.overrides.iter().map(|(k, v)| (k, v)))
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .env_remove("CARGO_MAKEFLAGS")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CARGO_LLVM_COV")
            .env_remove("CARGO_PRIMARY_PACKAGE");
        if env::var_os("CARGO_NET_OFFLINE").is_some() {
            cmd.arg("--offline");
        }
        let package = self.package;
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run cargo to build a wasm component: {e}"))?;
        if !status.success() {
            return Err(format!(
                "building the component (cargo rustc -p {package} --target {TARGET}) failed"
            ));
        }
        let wasm = self
            .target_dir
            .join(TARGET)
            .join(&self.profile)
            .join(format!("{}.wasm", package.replace('-', "_")));
        if !wasm.exists() {
            return Err(format!(
                "the component was not produced at {}",
                wasm.display()
            ));
        }
        Ok(wasm)
    }
}

/// `--remap-path-prefix` flags (as `CARGO_ENCODED_RUSTFLAGS`) that replace the workspace's
/// and cargo's home's paths with fixed ones.
pub(crate) fn remapped_paths(root: &Path) -> String {
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let mut flags = vec![format!("--remap-path-prefix={}=/callroute", root.display())];
    if let Some(home) = cargo_home {
        flags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    flags.join("\u{1f}")
}

pub(crate) fn rerun_if_changed(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            rerun_if_changed(&entry.path());
        }
    }
}

/// Make sure the active toolchain can build for `wasm32-wasip2`, adding the target if needed.
pub(crate) fn ensure_target() -> Result<(), String> {
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
        return Ok(());
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
    if added && sysroot.as_deref().is_some_and(installed) {
        Ok(())
    } else {
        Err(format!(
            "the Rust target {TARGET} is missing and could not be added automatically; run:\n    {hint}"
        ))
    }
}

/// For a build script: build `package` (a crate of the workspace) with the `plugin` profile
/// (or `CALLROUTE_PLUGIN_PROFILE`) under `OUT_DIR`, rerunning when `inputs` change; the build
/// fails with the nested build's error.
pub(crate) fn build_component(package: &str, inputs: &[&str]) -> PathBuf {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let profile = env::var("CALLROUTE_PLUGIN_PROFILE").unwrap_or_else(|_| "plugin".into());
    let build = ComponentBuild::new(
        &workspace_root(),
        package,
        &profile,
        out_dir.join("wasm-target"),
    );
    build.watch(inputs);
    build.run().unwrap_or_else(|e| panic!("{e}"))
}

/// For a build script: the workspace root (the parent of the crate being built).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    manifest_dir
        .parent()
        .expect("crates live in the workspace root")
        .to_owned()
}
