//! `cargo xtask size [--top N]`: the component's size against its budget, and where the bytes
//! go.
//!
//! The released component is stripped, so the breakdown comes from a build of the same code
//! with its symbol names kept (`target/size/`, the `plugin` profile without `strip`): the same
//! code, by crate, then the largest functions.

use std::collections::HashMap;
use wasmparser::{BinaryReader, Name, NameSectionReader, Parser, Payload};

/// Run the size report.
pub fn run(args: Vec<String>) -> Result<(), String> {
    let mut top = 20;
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--top" => {
                let value = args.next().ok_or("--top needs a value")?;
                top = value.parse().map_err(|_| format!("--top {value}"))?;
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let size = callroute_artifact::EMBEDDED_PLUGIN.len();
    let budget = callroute_artifact::COMPONENT_SIZE_BUDGET;
    println!(
        "component: {size} bytes of {budget} ({:.0} %), {} bytes of headroom",
        size as f64 * 100.0 / budget as f64,
        budget as i64 - size as i64
    );

    let wasm = build_with_names()?;
    let module = largest_core_module(&wasm)?;
    let profile = profile(module)?;
    println!(
        "core module: code {} bytes, data {} bytes",
        profile.code, profile.data
    );
    let mut by_crate: HashMap<String, usize> = HashMap::new();
    for (name, bytes) in &profile.functions {
        *by_crate.entry(crate_of(name)).or_default() += bytes;
    }
    let mut by_crate: Vec<_> = by_crate.into_iter().collect();
    by_crate.sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
    println!("\ncode by crate:");
    for (name, bytes) in by_crate.iter().take(top) {
        println!("{bytes:>9}  {name}");
    }
    let mut functions = profile.functions;
    functions.sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
    println!("\nlargest functions:");
    for (name, bytes) in functions.iter().take(top) {
        let shown: String = name.chars().take(110).collect();
        println!("{bytes:>9}  {shown}");
    }
    Ok(())
}

/// Build the component with symbol names kept (the release build's code, by the same nested
/// build, without `strip`); returns its bytes.
fn build_with_names() -> Result<Vec<u8>, String> {
    let root = crate::workspace_root();
    let built = crate::component::ComponentBuild::new(
        &root,
        "callroute-plugin",
        "plugin",
        root.join("target/size"),
    )
    .profile_setting("STRIP", "false")
    .run()?;
    std::fs::read(&built).map_err(|e| format!("{}: {e}", built.display()))
}

/// The component's main core module (the largest of the modules it nests).
fn largest_core_module(component: &[u8]) -> Result<&[u8], String> {
    let mut largest: Option<std::ops::Range<usize>> = None;
    for payload in Parser::new(0).parse_all(component) {
        if let Payload::ModuleSection {
            unchecked_range, ..
        } = payload.map_err(|e| e.to_string())?
            && largest
                .as_ref()
                .is_none_or(|l| l.len() < unchecked_range.len())
        {
            largest = Some(unchecked_range);
        }
    }
    largest
        .map(|range| &component[range])
        .ok_or_else(|| "the component holds no core module".into())
}

/// A core module's code by function (demangled names), and its data size.
struct Profile {
    code: usize,
    data: usize,
    functions: Vec<(String, usize)>,
}

fn profile(module: &[u8]) -> Result<Profile, String> {
    let mut imported_functions = 0u32;
    let mut bodies = Vec::new();
    let mut names = HashMap::new();
    let mut data = 0;
    for payload in Parser::new(0).parse_all(module) {
        match payload.map_err(|e| e.to_string())? {
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    let import = import.map_err(|e| e.to_string())?;
                    if matches!(import.ty, wasmparser::TypeRef::Func(_)) {
                        imported_functions += 1;
                    }
                }
            }
            Payload::CodeSectionEntry(body) => bodies.push(body.range().len()),
            Payload::DataSection(reader) => data = reader.range().len(),
            Payload::CustomSection(section) if section.name() == "name" => {
                let reader = BinaryReader::new(section.data(), section.data_offset());
                for name in NameSectionReader::new(reader) {
                    if let Name::Function(map) = name.map_err(|e| e.to_string())? {
                        for naming in map {
                            let naming = naming.map_err(|e| e.to_string())?;
                            names.insert(naming.index, naming.name.to_owned());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let functions = bodies
        .iter()
        .enumerate()
        .map(|(i, &bytes)| {
            let index = imported_functions + i as u32;
            let name = names
                .get(&index)
                .map(|n| format!("{:#}", rustc_demangle::demangle(n)))
                .unwrap_or_else(|| format!("function[{index}]"));
            (name, bytes)
        })
        .collect();
    Ok(Profile {
        code: bodies.iter().sum(),
        data,
        functions,
    })
}

/// The crate a (demangled) function belongs to: the first path segment, looking through
/// `<Type as Trait>` impls (to the trait's crate when the type is a primitive or generic).
/// Names without a path are the C allocator (dlmalloc's internals) and the export glue.
fn crate_of(name: &str) -> String {
    if !name.contains("::") {
        return "(C allocator, export glue)".into();
    }
    let mut name = name.trim_start_matches('<').trim_start_matches('&');
    name = name.strip_prefix("mut ").unwrap_or(name);
    if let Some((self_type, rest)) = name.split_once(" as ")
        && !self_type.contains("::")
    {
        name = rest.trim_start_matches('<');
    }
    let first = name
        .split("::")
        .next()
        .unwrap_or(name)
        .split([' ', '<', '>'])
        .next()
        .unwrap_or(name);
    match first {
        // Inherent methods of primitive types live in `core`; `__rustc` is std's allocator shim.
        "char" | "str" | "bool" | "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => "core",
        "__rustc" => "std",
        other => other,
    }
    .to_owned()
}
#[cfg(test)]
mod tests {
    #[test]
    fn crates() {
        for (name, krate) in [
            ("<char as core::fmt::Debug>::fmt", "core"),
            (
                "<&mut serde_json::de::Deserializer<R> as serde::Deserializer>::x",
                "serde_json",
            ),
            ("http::header::name::StandardHeader::from_bytes", "http"),
            ("dlmalloc", "(C allocator, export glue)"),
            ("core::str::<impl str>::trim_matches", "core"),
            (
                "<&[u8] as <alloc::ffi::c_str::CString>::new::SpecNewImpl>::spec_new_impl",
                "alloc",
            ),
        ] {
            assert_eq!(super::crate_of(name), krate, "{name}");
        }
    }
}
