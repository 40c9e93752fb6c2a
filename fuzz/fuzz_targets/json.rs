//! The component's JSON reader and writer (`callroute_plugin::json`): any text is read or
//! refused without a crash, and whatever is read, written back, reads back the same.
#![no_main]

use callroute_plugin::json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(value) = json::parse(text) {
        let written = value.to_string();
        assert_eq!(json::parse(&written).as_ref(), Ok(&value), "{written}");
    }
});
