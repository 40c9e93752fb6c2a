//! The built component itself: its contract with the host.

use callroute_host::EMBEDDED_PLUGIN;
use wasmtime::component::Component;

fn interface_names(kind: &str) -> Vec<String> {
    let engine = callroute_tests::router().engine().clone();
    let component = Component::new(&engine, EMBEDDED_PLUGIN).unwrap();
    let ty = component.component_type();
    match kind {
        "imports" => ty
            .imports(&engine)
            .map(|(name, _)| name.to_owned())
            .collect(),
        _ => ty
            .exports(&engine)
            .map(|(name, _)| name.to_owned())
            .collect(),
    }
}

#[test]
fn exports_the_router_interface() {
    let exports = interface_names("exports");
    assert!(
        exports.contains(&format!(
            "callroute:router/router@{}",
            env!("CARGO_PKG_VERSION")
        )),
        "{exports:?}"
    );
}

#[test]
fn imports_neither_filesystem_nor_sockets() {
    let imports = interface_names("imports");
    for needed in [
        "wasi:config/store@0.2.0-rc.1",
        "wasi:http/outgoing-handler@0.2.12",
    ] {
        assert!(
            imports.iter().any(|i| i == needed),
            "{needed} missing from {imports:?}"
        );
    }
    let forbidden: Vec<_> = imports
        .iter()
        .filter(|i| i.starts_with("wasi:filesystem") || i.starts_with("wasi:sockets"))
        .collect();
    assert!(
        forbidden.is_empty(),
        "the component must not ask for {forbidden:?}"
    );
}

/// The component imports exactly what `wit/world.wit` declares for the `plugin` world (with the
/// interfaces those use): the contract never understates what a host must provide.
#[test]
fn imports_exactly_what_the_world_declares() {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit"))
        .unwrap();
    let world = resolve.select_world(&[package], Some("plugin")).unwrap();
    let declared: std::collections::BTreeSet<String> = resolve.worlds[world]
        .imports
        .values()
        .filter_map(|item| match item {
            wit_parser::WorldItem::Interface { id, .. } => resolve.id_of(*id),
            _ => None,
        })
        .collect();
    let imported: std::collections::BTreeSet<String> =
        interface_names("imports").into_iter().collect();
    assert_eq!(imported, declared);
}

#[test]
fn fits_its_size_budget() {
    let size = EMBEDDED_PLUGIN.len();
    let budget = callroute_host::COMPONENT_SIZE_BUDGET;
    assert!(
        size <= budget,
        "the component is {size} bytes, over its budget of {budget}: `cargo xtask size` shows \
         where the bytes go"
    );
}

#[test]
fn carries_its_release_metadata() {
    let payload = wasm_metadata::Payload::from_binary(EMBEDDED_PLUGIN).unwrap();
    let metadata = payload.metadata();
    assert_eq!(metadata.name.as_deref(), Some("callroute-router"));
    assert_eq!(
        metadata
            .version
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some(env!("CARGO_PKG_VERSION")),
        "the component's version is the workspace version"
    );
    assert!(
        metadata.licenses.is_some() && metadata.source.is_some() && metadata.description.is_some()
    );
}

#[test]
fn a_precompiled_component_is_cached_and_reused() {
    use callroute_host::cache::{Source, entry_path, load};
    let dir = std::env::temp_dir().join(format!("callroute-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let engine =
        wasmtime::Engine::new(&callroute_host::router::engine_config(&Default::default())).unwrap();
    let (_, first) = load(&engine, EMBEDDED_PLUGIN, Some(&dir)).unwrap();
    assert_eq!(first, Source::Stored);
    assert!(entry_path(&dir, &engine, EMBEDDED_PLUGIN).exists());
    let (component, second) = load(&engine, EMBEDDED_PLUGIN, Some(&dir)).unwrap();
    assert_eq!(second, Source::Cached);
    // The cached code is a working component of the world.
    callroute_host::Router::from_component(
        engine.clone(),
        &component,
        callroute_host::RouterConfig::default(),
    )
    .unwrap();
    // Another component gets another entry.
    assert_ne!(
        entry_path(&dir, &engine, b"other"),
        entry_path(&dir, &engine, EMBEDDED_PLUGIN)
    );
    // A damaged entry is ignored, replaced, and costs only a compile.
    std::fs::write(entry_path(&dir, &engine, EMBEDDED_PLUGIN), b"garbage").unwrap();
    assert_eq!(
        load(&engine, EMBEDDED_PLUGIN, Some(&dir)).unwrap().1,
        Source::Stored
    );
    let _ = std::fs::remove_dir_all(&dir);
}
