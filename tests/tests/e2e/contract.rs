//! The 0.2.0 contract end to end: a CRM's list of destinations, validated one by one and rung
//! with the scheme's strategy, through the real component, the harness and `serve`; and a
//! component built against 0.1.0 still loading in this host.

use callroute_tests::*;
use serde_json::json;

/// The 0.1.0 release artifact (`cargo xtask dist` before the contract changed; sha256
/// f972bdef…ee2aeb03), kept to prove that this host still loads and routes with it.
const V0_1_COMPONENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/legacy/callroute-router-0.1.0.wasm"
);

fn targets(routing: &callroute_plugin::routing::Routing) -> Vec<&str> {
    routing
        .destinations
        .iter()
        .map(|d| d.target.value())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_is_rung_with_the_scheme_strategy_and_the_invalid_are_refused() {
    let crm = TestCrm::start(|_| {
        CrmReply::json(json!({"team": [
            {"target": "380441234567", "ring_timeout_secs": 15},
            {"target": "+19005550100"},
            {"target": "not a number"},
            {"target": "sip:lead@pbx.example.com", "ring_timeout_secs": 40},
        ]}))
    })
    .unwrap();
    let url = crm.url("/");
    let report = route(
        &[
            ("url", &url),
            ("import", "json"),
            ("destination_field", "team"),
            ("ring_strategy", "parallel"),
            ("allowed_prefixes", "380"),
        ],
        &seed_call(),
    )
    .await;
    let routing = report.result.as_ref().unwrap();
    assert!(routing.fallback_cause.is_none());
    assert_eq!(
        targets(routing),
        ["380441234567", "sip:lead@pbx.example.com"]
    );
    let rings: Vec<u32> = routing
        .destinations
        .iter()
        .map(|d| d.ring_timeout_secs)
        .collect();
    assert_eq!(rings, [15, 40]);
    assert_eq!(
        routing.strategy,
        callroute_plugin::destination::RingStrategy::Parallel
    );
    let refused: Vec<&str> = routing.refused.iter().map(|r| r.value.as_str()).collect();
    // In the CRM's order, whatever the reason.
    assert_eq!(refused, ["+19005550100", "not a number"]);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["destination"]["target"], "380441234567");
    assert_eq!(json["destinations"][1]["ring_timeout_secs"], 40);
    assert_eq!(json["strategy"], "parallel");
    assert!(
        json["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("allowed_prefixes"),
        "{json}"
    );
}

#[test]
fn serve_answers_the_first_in_plain_text_and_the_rest_in_headers() {
    let crm = TestCrm::start(|_| CrmReply::html("101\n102\nmanager_7\n")).unwrap();
    let served = Served::start(
        router(),
        &format!(
            "name = \"acme\"\nurl = \"{}\"\nring_timeout_secs = 20\nring_strategy = \"serial\"\n",
            crm.url("/")
        ),
    );
    let text = served.request(
        "POST",
        "/v1/route/acme",
        &[("accept", "text/plain")],
        r#"{"caller":"380501112233"}"#,
    );
    assert_eq!(text.status, 200);
    assert_eq!(text.text(), "101");
    assert_eq!(text.header("x-ring-timeout"), Some("20"));
    assert_eq!(text.header("x-next-destinations"), Some("102, manager_7"));
    assert_eq!(text.header("x-next-ring-timeouts"), Some("20, 20"));
    assert_eq!(text.header("x-ring-strategy"), Some("serial"));
    let json = served
        .request(
            "POST",
            "/v1/route/acme",
            &[],
            r#"{"caller":"380501112233"}"#,
        )
        .json();
    assert_eq!(json["destinations"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_built_against_0_1_0_still_loads_and_routes() {
    let wasm = std::fs::read(V0_1_COMPONENT).unwrap();
    // The fixture is a 0.1.0 component, so what loads below is the 0.1.0 path.
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::new(&engine, &wasm).unwrap();
    let exports: Vec<String> = component
        .component_type()
        .exports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    assert!(
        exports.contains(&"callroute:router/router@0.1.0".to_owned()),
        "{exports:?}"
    );
    let router = callroute_host::Router::new(
        &wasm,
        callroute_host::RouterConfig {
            allow_private_network: true,
            ..callroute_host::RouterConfig::default()
        },
    )
    .expect("a 0.1.0 component loads");
    let crm = TestCrm::start(|_| CrmReply::html("101")).unwrap();
    let url = crm.url("/");
    let report = router.route(&scheme(&[("url", &url)]), &seed_call()).await;
    assert_eq!(routed(&report).0, Target::Phone("101".into()));

    // Its destination and alternatives become the destinations, rung in turn.
    let report = router
        .route(
            &scheme(&[
                ("url", &refused_url("/")),
                ("fallback.0", "reception"),
                ("fallback.1", "+380441234567"),
            ]),
            &seed_call(),
        )
        .await;
    let routing = fell_back(&report);
    assert_eq!(targets(routing), ["reception", "+380441234567"]);
    assert_eq!(
        routing.strategy,
        callroute_plugin::destination::RingStrategy::Serial
    );
}
