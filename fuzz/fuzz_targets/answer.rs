//! A CRM's answer, read every way a scheme can read it: whatever passes must be a safe
//! destination.
#![no_main]

use callroute_plugin::answer::{RawAnswer, read};
use callroute_plugin::call::Call;
use callroute_plugin::destination::Target;
use callroute_plugin::scheme::Scheme;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let import = ["http", "json", "json-rpc"][selector as usize % 3];
    let scheme = Scheme::from_pairs([
        ("url", "http://crm.example.com/"),
        ("import", import),
        ("destination_field", "data.number_01"),
        ("jsonrpc_method", "route"),
    ])
    .unwrap();
    let answer = RawAnswer { status: 200, body: body.to_vec() };
    if let Ok(answered) = read(&scheme, &Call::default(), &answer) {
        assert!(!answered.destinations.is_empty());
        for destination in &answered.destinations {
            let value = destination.target.value();
            assert!(!value.chars().any(char::is_control));
            assert_eq!(Target::parse(value).as_ref(), Ok(&destination.target));
        }
    }
});
