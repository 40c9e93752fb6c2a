//! Builds the routing component (`plugin/`) for `wasm32-wasip2` (see `build/component.rs`),
//! drops its item names, stamps it with registry metadata (name, version, description,
//! licence, source), and hands it to the crate as generated items, so the `callroute` binary
//! embeds exactly the component that `cargo xtask dist` releases.
//!
//! Nothing outside Rust's toolchain takes part (no `wasm-opt`): the component is the same bytes
//! on every machine with the pinned toolchain and `Cargo.lock`, whatever is on `PATH`, and a
//! test keeps it within its size budget without help.
//!
//! The release version is the workspace version, and it must equal the WIT package version
//! (`package callroute:router@X;`): the build fails if they drift apart.

include!("build/component.rs");

use wasm_metadata::{AddMetadata, AddMetadataField};

fn main() {
    let version = env::var("CARGO_PKG_VERSION").unwrap();
    check_wit_version(&version);

    let built = build_component(
        "callroute-plugin",
        &["plugin/src", "plugin/Cargo.toml", "artifact/build"],
    );
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    // The component-level name section names every type and function the component links (10
    // KiB that no host or tool here needs); clearing it leaves an empty one, which the stamp
    // below fills with the component's own name.
    let mut clear_names = AddMetadata::default();
    clear_names.name = AddMetadataField::Clear;
    let bytes = clear_names
        .to_wasm(&std::fs::read(&built).unwrap())
        .expect("clearing the component's item names");
    let mut metadata = AddMetadata::default();
    metadata.name = AddMetadataField::Set("callroute-router".to_owned());
    metadata.version = AddMetadataField::Set(wasm_metadata::Version::new(version.clone()));
    metadata.description = AddMetadataField::Set(wasm_metadata::Description::new(
        "callroute: routes a phone call by asking the customer's CRM webhook (callroute:router/plugin)",
    ));
    metadata.licenses = AddMetadataField::Set(
        wasm_metadata::Licenses::new(&env::var("CARGO_PKG_LICENSE").unwrap()).unwrap(),
    );
    metadata.source = AddMetadataField::Set(
        wasm_metadata::Source::new(&env::var("CARGO_PKG_REPOSITORY").unwrap()).unwrap(),
    );
    let stamped = metadata
        .to_wasm(&bytes)
        .expect("adding metadata to the component");

    let wasm = out_dir.join("callroute-router.wasm");
    std::fs::write(&wasm, stamped).unwrap();
    let path = wasm.display().to_string();
    let generated = format!(
        "/// Path of the routing component built for `{TARGET}` by `build.rs`.\n\
         pub const PLUGIN_WASM_PATH: &str = {path:?};\n\
         /// The routing component built by `build.rs` from `plugin/`: the release artifact.\n\
         pub static EMBEDDED_PLUGIN: &[u8] = include_bytes!({path:?});\n"
    );
    std::fs::write(out_dir.join("component.rs"), generated).unwrap();
}

/// The WIT package version must be the workspace version.
fn check_wit_version(version: &str) {
    let world = workspace_root().join("wit/world.wit");
    let text = std::fs::read_to_string(&world).unwrap();
    let declared = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("package callroute:router@"))
        .map(|rest| rest.trim_end_matches(';').trim().to_owned());
    assert_eq!(
        declared.as_deref(),
        Some(version),
        "{} declares callroute:router@{declared:?}, but the workspace version is {version}: \
         bump them together",
        world.display()
    );
}
