//! The call JSON and query-string parsers (`callroute route --call`, `callroute serve`).
#![no_main]

use callroute_plugin::call::Call;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Call::from_json(text).map(|call| call.check_limits());
        let _ = Call::from_query(text);
    }
    let _ = Call::from_http("POST", None, data);
});
