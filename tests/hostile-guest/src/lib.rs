//! A hostile component of the `callroute:router/plugin` world, built by `tests/build.rs`.
//!
//! One component, many misbehaviours: the scheme key `behaviour` picks one, so a test
//! chooses how the guest breaks the same way it would choose a CRM URL. The harness must turn
//! each into a typed error (`trap`, or `bad-response` for a forged destination) and keep
//! serving.

#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    path: "../../wit",
    world: "plugin",
    generate_all,
});

use exports::callroute::router::router::{
    Call, Delivery, Destination, Guest, Outcome, RingStrategy, RouteError, Routing, Target,
};
use wasi::http::types::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

struct Hostile;

export!(Hostile);

/// The scheme's `behaviour`.
fn behaviour() -> String {
    wasi::config::store::get("behaviour")
        .ok()
        .flatten()
        .unwrap_or_default()
}

impl Guest for Hostile {
    fn route(_call: Call) -> Result<Routing, RouteError> {
        let behaviour = behaviour();
        let decision = match behaviour.as_str() {
            // A decision id that would add a header to every answer that carries it.
            "inject-decision" => "d1\r\nx-evil: 1".to_owned(),
            _ => "0123456789abcdef0123456789abcdef".to_owned(),
        };
        let phone = |target: &str| {
            Ok(Routing {
                destinations: vec![Destination {
                    target: Target::Phone(target.into()),
                    ring_timeout_secs: 30,
                }],
                strategy: RingStrategy::Serial,
                refused: Vec::new(),
                fallback_cause: None,
                decision: decision.clone(),
            })
        };
        match behaviour.as_str() {
            // (The values name no word of the messages they cause: a key the host does not know
            // is a component's own, and its value is masked wherever it appears, as a secret.)
            // A Rust panic: with panic = "abort" it is a wasm trap after a message on stderr.
            "crash-by-panic" => panic!("hostile guest panicked on purpose"),
            // A bare trap.
            "crash-by-trap" => core::arch::wasm32::unreachable(),
            // Spin forever: only the host's deadline can stop it.
            "loop" => loop {
                core::hint::spin_loop();
            },
            // Allocate until the memory limit says no.
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                }
            }
            // A forged destination that would inject a SIP header into the PBX.
            "inject" => phone("3801\r\nVia: SIP/2.0/UDP evil"),
            // A SIP address passed off as a phone number.
            "mislabel" => phone("sip:alice@pbx.example.com"),
            // A well-formed number the scheme's allowlist does not allow (a premium line).
            "premium" => phone("+1 900 555 0100"),
            // An error, as a component without fallbacks of its own reports a CRM failure.
            "fail" => Err(RouteError::Transport("the CRM is down".into())),
            // Behaves: a fixed destination, to show the harness still serves afterwards.
            _ => phone("380123456789"),
        }
    }

    /// Reports break the same ways routing does; a well-behaved one says the CRM took it,
    /// without asking anyone.
    fn report(_outcome: Outcome, _delivery: Delivery) -> Result<(), RouteError> {
        match behaviour().as_str() {
            "crash-by-panic" => panic!("hostile guest panicked on purpose"),
            "loop" => loop {
                core::hint::spin_loop();
            },
            "fail" => Err(RouteError::Transport("the CRM is down".into())),
            _ => Ok(()),
        }
    }
}

/// The world's HTTP export: this guest has nothing to serve and says so with a 501.
impl exports::wasi::http::incoming_handler::Guest for Hostile {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let response = OutgoingResponse::new(Fields::new());
        let _ = response.set_status_code(501);
        ResponseOutparam::set(out, Ok(response));
    }
}
