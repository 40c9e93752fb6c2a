//! [`HostPolicy`]: the part of a scheme a host enforces itself, whatever the component does.
//!
//! | field | what the host does with it |
//! |---|---|
//! | `url`, `fallback_url` | the only origins the sandbox may reach (the outbound guard) |
//! | `response_timeout_secs` | the call's deadline, kept by the host too |
//! | `fallback`, `ring_timeout_secs` | what a call gets when the component cannot answer |
//! | `allowed_prefixes`, `allowed_sip_domains` | where any component may route |
//!
//! The component reads these fields with the same code: [`Scheme::from_pairs`] hands every
//! pair to the same field readers (`PolicyFields`) first, so the host and the component cannot disagree on
//! a value (the last of a repeated key wins; an invalid value is an error naming the key). A
//! host reads only these fields and lets other keys pass, as a component loaded with
//! `--plugin` may read keys of its own.
//!
//! [`Scheme::from_pairs`]: super::Scheme::from_pairs

use super::lists::Lists;
use super::values::{
    DEFAULT_RESPONSE_TIMEOUT, DEFAULT_RING_TIMEOUT_SECS, parse_response_timeout, parse_ring_timeout,
};
use super::{Endpoint, SchemeError, invalid};
use crate::destination::{Allowlist, Target};
use std::time::Duration;

/// What a host enforces for a scheme. The default is the policy of a scheme with none of
/// the fields: no endpoint (the guard lets nothing out), the default timeouts, no fallback,
/// any destination.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPolicy {
    /// The CRM (`url`); `None` when the scheme has none, and then the guard lets nothing out.
    pub url: Option<Endpoint>,
    /// The secondary CRM.
    pub fallback_url: Option<Endpoint>,
    /// The most the CRM may take: the call's deadline.
    pub response_timeout: Duration,
    /// How long a destination rings.
    pub ring_timeout_secs: u32,
    /// The static fallback destinations, in order.
    pub fallback: Vec<Target>,
    /// Where a component may route calls.
    pub allowlist: Allowlist,
}

impl Default for HostPolicy {
    fn default() -> Self {
        HostPolicy {
            url: None,
            fallback_url: None,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            ring_timeout_secs: DEFAULT_RING_TIMEOUT_SECS,
            fallback: Vec::new(),
            allowlist: Allowlist::default(),
        }
    }
}

impl HostPolicy {
    /// Read the policy from a scheme's flat pairs, under the rules [`super::Scheme`] reads
    /// them by; keys outside the policy are not judged here.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, SchemeError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut fields = PolicyFields::default();
        for (key, value) in pairs {
            fields.offer(key.as_ref(), value.as_ref().trim())?;
        }
        fields.finish().map(|(policy, _)| policy)
    }

    /// The endpoints the sandbox may reach: `url`, then `fallback_url`.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.url.iter().chain(&self.fallback_url).cloned().collect()
    }
}

/// The policy's fields, read as a scheme's pairs go by.
#[derive(Default)]
pub(crate) struct PolicyFields {
    /// `url`, once given.
    pub(crate) url: Option<Endpoint>,
    fallback_url: Option<Endpoint>,
    response_timeout: Option<Duration>,
    ring_timeout_secs: Option<u32>,
    /// Every list field's entries, the scheme's own (`signing_secret`) included: list keys
    /// are judged by one rule.
    lists: Lists,
}

impl PolicyFields {
    /// Take `key = value` (`value` trimmed) if it is a policy field or a list field:
    /// `Ok(true)` when taken, `Ok(false)` for a key the policy leaves to the scheme.
    pub(crate) fn offer(&mut self, key: &str, value: &str) -> Result<bool, SchemeError> {
        if self.lists.offer(key, value)? {
            return Ok(true);
        }
        match key {
            "url" => self.url = Some(Endpoint::parse(value).map_err(|r| invalid(key, r))?),
            "fallback_url" => {
                self.fallback_url = Some(Endpoint::parse(value).map_err(|r| invalid(key, r))?)
            }
            "response_timeout_secs" => {
                self.response_timeout =
                    Some(parse_response_timeout(value).map_err(|r| invalid(key, r))?)
            }
            "ring_timeout_secs" => {
                self.ring_timeout_secs =
                    Some(parse_ring_timeout(value).map_err(|r| invalid(key, r))?)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The policy, and the list entries that are not the policy's (`signing_secret`).
    pub(crate) fn finish(mut self) -> Result<(HostPolicy, Lists), SchemeError> {
        let fallback = self
            .lists
            .take("fallback")
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(key, value)| Target::parse(&value).map_err(|r| invalid(&key, r)))
            .collect::<Result<_, _>>()?;
        let allowlist = Allowlist::from_entries(
            self.lists.take("allowed_prefixes"),
            self.lists.take("allowed_sip_domains"),
        )?;
        let policy = HostPolicy {
            url: self.url,
            fallback_url: self.fallback_url,
            response_timeout: self.response_timeout.unwrap_or(DEFAULT_RESPONSE_TIMEOUT),
            ring_timeout_secs: self.ring_timeout_secs.unwrap_or(DEFAULT_RING_TIMEOUT_SECS),
            fallback,
            allowlist,
        };
        Ok((policy, self.lists))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_fields_and_nothing_else() {
        let policy = HostPolicy::from_pairs([
            ("url", "http://crm.example.com/route"),
            ("fallback_url", "https://backup.example.com/"),
            ("response_timeout_secs", "2.5"),
            ("ring_timeout_secs", "12"),
            ("fallback.1", "manager_7"),
            ("fallback.0", "101"),
            ("allowed_prefixes", "380, +48"),
            ("allowed_sip_domains.0", "PBX.example.com"),
            // Not the host's to judge: a component loaded with --plugin may read its own keys.
            ("behaviour", "anything"),
            ("retries", "not a number"),
        ])
        .unwrap();
        assert_eq!(
            policy
                .endpoints()
                .iter()
                .map(Endpoint::redacted)
                .collect::<Vec<_>>(),
            [
                "http://crm.example.com:80/route",
                "https://backup.example.com:443/"
            ]
        );
        assert_eq!(policy.response_timeout, Duration::from_millis(2500));
        assert_eq!(policy.ring_timeout_secs, 12);
        assert_eq!(
            policy.fallback,
            [Target::Phone("101".into()), Target::Sip("manager_7".into())]
        );
        assert_eq!(policy.allowlist.prefixes, ["380", "48"]);
        assert_eq!(policy.allowlist.sip_domains, ["pbx.example.com"]);
    }

    #[test]
    fn a_bad_value_is_an_error_never_a_default() {
        for (key, value) in [
            ("fallback", "not a destination!"),
            ("ring_timeout_secs", "0"),
            ("response_timeout_secs", "61"),
            ("url", "ftp://crm/"),
            ("allowed_prefixes.1", "+38a"),
            ("fallback.x", "101"),
        ] {
            let error = HostPolicy::from_pairs([(key, value)])
                .unwrap_err()
                .to_string();
            assert!(error.contains(&format!("`{key}`")), "{key}: {error}");
        }
    }

    #[test]
    fn the_last_of_a_repeated_key_wins() {
        let policy = HostPolicy::from_pairs([
            ("ring_timeout_secs", "12"),
            ("ring_timeout_secs", "40"),
            ("url", "http://first.example.com/"),
            ("url", "http://second.example.com/"),
        ])
        .unwrap();
        assert_eq!(policy.ring_timeout_secs, 40);
        assert_eq!(policy.url.unwrap().origin.host, "second.example.com");
    }
}
