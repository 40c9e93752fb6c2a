// Shrinks the routing component to fit its size budget (256 KiB, checked by
// `host-harness/tests/artifact.rs`), for `host-harness/build.rs`.
//
// rustc's `opt-level = "s"` + LTO output still holds about 17 % that binaryen's `wasm-opt`
// removes, and no amount of trimming our own code gets there without it. So the component's
// core module goes through `wasm-opt -Os` and is put back in place: its imports and exports
// (all the component's canonical functions refer to) are unchanged, and the result is validated
// before it is used. The component-level name section is dropped too (10 KiB of item names no
// tool here needs; the component's own name is stamped again afterwards).
//
// `wasm-opt` is found as `$WASM_OPT`, else on `PATH`; without it the build fails saying how to
// install it. The version used is recorded in the component's `processed-by` metadata.
//
// (`env`, `Path` and `Command` come from `build/component.rs`, included alongside.)

/// The wasm features rustc's `wasm32-wasip2` target emits, for wasm-opt (which, without a
/// `target_features` section, assumes the MVP and would refuse them).
const WASM_OPT_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-reference-types",
    "--enable-multivalue",
];

/// The optimised component and the `wasm-opt` version that made it.
fn optimize_component(component: &[u8], work_dir: &Path) -> (Vec<u8>, String) {
    println!("cargo:rerun-if-env-changed=WASM_OPT");
    let wasm_opt = env::var_os("WASM_OPT").unwrap_or_else(|| "wasm-opt".into());
    let version = Command::new(&wasm_opt)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| {
            panic!(
                "binaryen's `wasm-opt` is needed to build the routing component within its size \
                 budget, and {wasm_opt:?} cannot be run. Install it:\n    \
                 apt-get install binaryen   (Debian, Ubuntu)\n    \
                 brew install binaryen      (macOS)\n\
                 or set WASM_OPT to its path."
            )
        });

    let sections = sections(component);
    let (module_start, module_end) = sections
        .iter()
        .filter(|s| s.id == CORE_MODULE_SECTION)
        .map(|s| (s.contents_start, s.end))
        .max_by_key(|(start, end)| end - start)
        .expect("the component holds a core module");
    let input = work_dir.join("core-module.wasm");
    let output = work_dir.join("core-module.opt.wasm");
    std::fs::write(&input, &component[module_start..module_end]).unwrap();
    let status = Command::new(&wasm_opt)
        .arg("-Os")
        .args(WASM_OPT_FEATURES)
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .status()
        .expect("running wasm-opt");
    assert!(status.success(), "wasm-opt failed on the component's core module");
    let optimized = std::fs::read(&output).unwrap();

    let mut out = component[..PREAMBLE_LEN].to_vec();
    for section in &sections {
        if section.id == CORE_MODULE_SECTION && section.contents_start == module_start {
            out.push(CORE_MODULE_SECTION);
            push_leb128(&mut out, optimized.len());
            out.extend_from_slice(&optimized);
        } else if section.custom_name.as_deref() != Some("component-name") {
            out.extend_from_slice(&component[section.start..section.end]);
        }
    }
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&out)
        .expect("the optimised component is valid");
    (out, version)
}

/// The component binary's magic and layer/version header.
const PREAMBLE_LEN: usize = 8;
/// A component's section holding a core module.
const CORE_MODULE_SECTION: u8 = 1;
const CUSTOM_SECTION: u8 = 0;

/// A top-level section of a component binary.
struct Section {
    id: u8,
    /// Where the section starts (its id byte).
    start: usize,
    /// Where its contents start, after the id and size.
    contents_start: usize,
    end: usize,
    /// A custom section's name.
    custom_name: Option<String>,
}

fn sections(bytes: &[u8]) -> Vec<Section> {
    let mut sections = Vec::new();
    let mut pos = PREAMBLE_LEN;
    while pos < bytes.len() {
        let start = pos;
        let id = bytes[pos];
        let (size, contents_start) = read_leb128(bytes, pos + 1);
        let end = contents_start + size;
        let custom_name = (id == CUSTOM_SECTION).then(|| {
            let (len, name_start) = read_leb128(bytes, contents_start);
            String::from_utf8_lossy(&bytes[name_start..name_start + len]).into_owned()
        });
        sections.push(Section {
            id,
            start,
            contents_start,
            end,
            custom_name,
        });
        pos = end;
    }
    assert_eq!(pos, bytes.len(), "the component's sections run past its end");
    sections
}

fn read_leb128(bytes: &[u8], mut pos: usize) -> (usize, usize) {
    let (mut value, mut shift) = (0usize, 0);
    loop {
        let byte = bytes[pos];
        pos += 1;
        value |= usize::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return (value, pos);
        }
        shift += 7;
    }
}

fn push_leb128(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
