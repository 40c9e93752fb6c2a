//! The precompiled-component cache: a restart loads machine code instead of compiling.
//!
//! An entry is named by the SHA-256 of the component and the engine's
//! `precompile_compatibility_hash` (wasmtime version, target, compiler settings), so a new
//! component or a new build of `callroute` never loads stale code. Entries are written to a
//! temporary file and renamed into place, so a reader never sees half an entry.
//!
//! Loading an entry runs its machine code without validation: the cache directory must be
//! writable only by the user that runs `callroute`.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How the component was obtained, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Compiled now (no cache configured).
    Compiled,
    /// Compiled now and stored in the cache.
    Stored,
    /// Loaded from the cache.
    Cached,
}

/// The cache entry for `wasm` under `engine`.
pub fn entry_path(dir: &Path, engine: &Engine, wasm: &[u8]) -> PathBuf {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let digest = callroute_plugin::request::hex(&Sha256::digest(wasm)[..16]);
    dir.join(format!("{digest}-{:016x}.cwasm", engine_hash.finish()))
}

/// Compile `wasm`, or load its precompiled form from `dir`; store it there when missing.
/// A cache that cannot be read or written only costs the compile, never the component.
pub fn load(
    engine: &Engine,
    wasm: &[u8],
    dir: Option<&Path>,
) -> wasmtime::Result<(Component, Source)> {
    let Some(dir) = dir else {
        return Ok((Component::new(engine, wasm)?, Source::Compiled));
    };
    let path = entry_path(dir, engine, wasm);
    // Read the entry into memory rather than mapping the file: a mapped entry that someone
    // truncates or rewrites in place would crash the host (SIGBUS).
    if let Ok(bytes) = std::fs::read(&path) {
        // SAFETY: the entry was written by `store` below for exactly this component and
        // engine configuration (its name says so), in a directory only this user may write;
        // wasmtime still checks its header and engine compatibility.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(component) => return Ok((component, Source::Cached)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unusable cache entry")
            }
        }
    }
    let precompiled = engine.precompile_component(wasm)?;
    // SAFETY: these bytes were produced just now by this engine from `wasm`.
    let component = unsafe { Component::deserialize(engine, &precompiled)? };
    match store(&path, &precompiled) {
        Ok(()) => Ok((component, Source::Stored)),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the component cache");
            Ok((component, Source::Compiled))
        }
    }
}

fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(".{}.tmp", std::process::id()));
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path)
}
