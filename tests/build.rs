//! Builds the hostile test guest (`tests/hostile-guest/`) for `wasm32-wasip2`, the same way
//! the artifact crate builds the routing component (see `artifact/build/component.rs`).

include!("../artifact/build/component.rs");

fn main() {
    let wasm = build_component(
        "callroute-hostile-guest",
        &[
            "tests/hostile-guest/src",
            "tests/hostile-guest/Cargo.toml",
            "artifact/build",
        ],
    );
    let generated = format!(
        "/// Path of the hostile test guest built for `{TARGET}` by `build.rs`.\n\
         pub const HOSTILE_GUEST_WASM: &str = {:?};\n",
        wasm.display().to_string()
    );
    let out_dir = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("guests.rs"), generated).unwrap();
}
