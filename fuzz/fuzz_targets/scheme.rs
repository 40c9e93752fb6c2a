//! The scheme parser on arbitrary flat pairs: lines of `key=value`.
#![no_main]

use callroute_plugin::scheme::Scheme;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
    if let Err(e) = Scheme::from_pairs(pairs) {
        assert!(e.to_string().contains("scheme field `"));
    }
});
