//! The scheme parser on arbitrary flat pairs: lines of `key=value`. Whatever it accepts, the
//! host reads the same policy from (`HostPolicy`, the fields the host enforces itself), and
//! whatever the host refuses, it refuses too.
#![no_main]

use callroute_plugin::scheme::{HostPolicy, Scheme};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let policy = HostPolicy::from_pairs(pairs.iter().map(|(k, v)| (k, v)));
    match Scheme::from_pairs(pairs) {
        Ok(scheme) => {
            let policy = policy.expect("the host refused a scheme the component accepts");
            let expected = scheme.host_policy();
            assert_eq!(policy.url, expected.url);
            assert_eq!(policy.fallback_url, expected.fallback_url);
            assert_eq!(policy.response_timeout, expected.response_timeout);
            assert_eq!(policy.ring_timeout_secs, expected.ring_timeout_secs);
            assert_eq!(policy.fallback, expected.fallback);
            assert_eq!(policy.allowlist, expected.allowlist);
        }
        Err(e) => assert!(e.to_string().contains("scheme field `")),
    }
});
