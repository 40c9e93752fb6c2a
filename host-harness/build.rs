//! Builds the routing component (`plugin/`) for `wasm32-wasip2` so the `callroute` binary can
//! embed it; the artifact's path and bytes are handed to the crate as generated items. The
//! nested build is described in `build/component.rs`.

include!("build/component.rs");

fn main() {
    let wasm = build_component("callroute-plugin", &["plugin/src", "plugin/Cargo.toml"]);
    let path = wasm.display().to_string();
    let generated = format!(
        "/// Path of the routing component built for `{TARGET}` by `build.rs`.\n\
         pub const PLUGIN_WASM_PATH: &str = {path:?};\n\
         /// The routing component built by `build.rs` from `plugin/`, embedded in the binary.\n\
         pub static EMBEDDED_PLUGIN: &[u8] = include_bytes!({path:?});\n"
    );
    let out_dir = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("plugin_artifact.rs"), generated).unwrap();
}
