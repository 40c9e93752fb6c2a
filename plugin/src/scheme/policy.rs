//! [`HostPolicy`]: the part of a scheme a host enforces itself, whatever the component does.
//!
//! | field | what the host does with it |
//! |---|---|
//! | `url`, `fallback_url`, `outcome_url` | the only origins the sandbox may reach (the outbound guard) |
//! | `response_timeout_secs` | the call's deadline, kept by the host too |
//! | `fallback`, `ring_timeout_secs` | what a call gets when the component cannot answer |
//! | `allowed_prefixes`, `allowed_sip_domains` | where any component may route |
//! | `max_concurrent_calls`, `breaker_failures`, `breaker_cooldown_secs`, `api_tokens`, `remember_secs`, `outcome_retry_hours` | the service's settings for this tenant ([`ServiceSettings`]) |
//!
//! The component reads these fields with the same code: [`Scheme::from_pairs`] hands every
//! pair to the same field readers (`PolicyFields`) first, so given the same pairs the host
//! and the component read the same values (the last of a repeated key wins; an invalid
//! value is an error naming the key). A host reads only these fields and lets other keys
//! pass, as a component loaded with `--plugin` may read keys of its own.
//!
//! [`Scheme::from_pairs`]: super::Scheme::from_pairs

use super::Allowlist;
use super::lists::Lists;
use super::values::{
    DEFAULT_BREAKER_COOLDOWN, DEFAULT_BREAKER_FAILURES, DEFAULT_OUTCOME_RETRY,
    DEFAULT_RESPONSE_TIMEOUT, DEFAULT_RING_TIMEOUT_SECS, parse_breaker_cooldown,
    parse_breaker_failures, parse_max_concurrent_calls, parse_outcome_retry, parse_remember,
    parse_response_timeout, parse_ring_timeout,
};
use super::{Endpoint, SchemeError, invalid};
use crate::destination::Target;
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
    /// Where outcome reports go; `None` when the scheme sends none.
    pub outcome_url: Option<Endpoint>,
    /// The most the CRM may take: the call's deadline.
    pub response_timeout: Duration,
    /// How long a destination rings.
    pub ring_timeout_secs: u32,
    /// The static fallback destinations, in order.
    pub fallback: Vec<Target>,
    /// Where a component may route calls.
    pub allowlist: Allowlist,
    /// How a service treats this tenant.
    pub service: ServiceSettings,
}

/// How a service that holds many tenants treats this one: its share of the sandbox, its
/// CRM endpoints' circuit breakers, who may route its calls. The component accepts these
/// fields and leaves them to the host.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSettings {
    /// The most calls of this scheme in flight at once; `None` for the host's default share.
    pub max_concurrent_calls: Option<u32>,
    /// Consecutive failures that open an endpoint's breaker; 0 turns breakers off.
    pub breaker_failures: u32,
    /// How long an open breaker waits before it lets a probe through (the first time).
    pub breaker_cooldown: std::time::Duration,
    /// Bearer tokens that may route this scheme's calls; empty when the scheme needs none.
    pub api_tokens: Vec<ApiToken>,
    /// How long the host remembers where the CRM routed a caller, to route them there when
    /// the CRMs fail; `None` (the default) remembers nothing.
    pub remember: Option<std::time::Duration>,
    /// How long a host keeps trying to deliver an outcome report before it gives it up.
    pub outcome_retry: std::time::Duration,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            max_concurrent_calls: None,
            breaker_failures: DEFAULT_BREAKER_FAILURES,
            breaker_cooldown: DEFAULT_BREAKER_COOLDOWN,
            api_tokens: Vec::new(),
            remember: None,
            outcome_retry: DEFAULT_OUTCOME_RETRY,
        }
    }
}

/// Fewest characters in an API token: a shorter one could be guessed.
pub const MIN_API_TOKEN_LEN: usize = 16;
/// Most characters in an API token: a request presenting a longer one is refused unread.
pub const MAX_API_TOKEN_LEN: usize = 1024;

/// A bearer token (a secret): its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// A token from a scheme field; `key` names the field in the error, which never holds
    /// the token.
    fn parse(key: &str, value: &str) -> Result<ApiToken, SchemeError> {
        if value.chars().count() < MIN_API_TOKEN_LEN {
            return Err(invalid(
                key,
                format!("a token must be at least {MIN_API_TOKEN_LEN} characters"),
            ));
        }
        if value.len() > MAX_API_TOKEN_LEN {
            return Err(invalid(
                key,
                format!("a token must be at most {MAX_API_TOKEN_LEN} characters"),
            ));
        }
        // What an HTTP header can carry as it is: a token that cannot be sent could never match.
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                key,
                "a token is printable ASCII, without spaces or control characters",
            ));
        }
        Ok(ApiToken(value.to_owned()))
    }

    /// The token itself, to compare with what a request presents.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(…)")
    }
}

impl Default for HostPolicy {
    fn default() -> Self {
        HostPolicy {
            url: None,
            fallback_url: None,
            outcome_url: None,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            ring_timeout_secs: DEFAULT_RING_TIMEOUT_SECS,
            fallback: Vec::new(),
            allowlist: Allowlist::default(),
            service: ServiceSettings::default(),
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

    /// The endpoints the sandbox may reach: `url`, then `fallback_url`, then `outcome_url`.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.url
            .iter()
            .chain(&self.fallback_url)
            .chain(&self.outcome_url)
            .cloned()
            .collect()
    }
}

/// The policy's fields, read as a scheme's pairs go by.
#[derive(Default)]
pub(crate) struct PolicyFields {
    /// What is read so far, over the defaults.
    pub(crate) read: HostPolicy,
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
        let field = |reason| invalid(key, reason);
        let read = &mut self.read;
        match key {
            "url" => read.url = Some(Endpoint::parse(value).map_err(field)?),
            "fallback_url" => read.fallback_url = Some(Endpoint::parse(value).map_err(field)?),
            "outcome_url" => read.outcome_url = Some(Endpoint::parse(value).map_err(field)?),
            "response_timeout_secs" => {
                read.response_timeout = parse_response_timeout(value).map_err(field)?
            }
            "ring_timeout_secs" => {
                read.ring_timeout_secs = parse_ring_timeout(value).map_err(field)?
            }
            "max_concurrent_calls" => {
                read.service.max_concurrent_calls =
                    Some(parse_max_concurrent_calls(value).map_err(field)?)
            }
            "breaker_failures" => {
                read.service.breaker_failures = parse_breaker_failures(value).map_err(field)?
            }
            "breaker_cooldown_secs" => {
                read.service.breaker_cooldown = parse_breaker_cooldown(value).map_err(field)?
            }
            "remember_secs" => read.service.remember = parse_remember(value).map_err(field)?,
            "outcome_retry_hours" => {
                read.service.outcome_retry = parse_outcome_retry(value).map_err(field)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The policy, and the list entries that are not the policy's (`signing_secret`).
    pub(crate) fn finish(mut self) -> Result<(HostPolicy, Lists), SchemeError> {
        self.read.fallback = self
            .lists
            .take("fallback")
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(key, value)| Target::parse(&value).map_err(|r| invalid(&key, r)))
            .collect::<Result<_, _>>()?;
        self.read.allowlist = Allowlist::from_entries(
            self.lists.take("allowed_prefixes"),
            self.lists.take("allowed_sip_domains"),
        )?;
        self.read.service.api_tokens = self
            .lists
            .take("api_tokens")
            .into_iter()
            .filter(|(_, token)| !token.is_empty())
            .map(|(key, token)| ApiToken::parse(&key, &token))
            .collect::<Result<_, _>>()?;
        Ok((self.read, self.lists))
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
            ("outcome_url", "https://crm.example.com/outcome"),
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
                "https://backup.example.com:443/",
                "https://crm.example.com:443/outcome"
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
            ("outcome_url", "crm/outcome"),
            ("outcome_retry_hours", "0"),
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
    fn service_settings_and_tokens_that_never_show() {
        let policy = HostPolicy::from_pairs([
            ("max_concurrent_calls", "40"),
            ("breaker_failures", "0"),
            ("breaker_cooldown_secs", "2.5"),
            ("outcome_retry_hours", "0.5"),
            ("api_tokens.0", "tok-0123456789abcdef"),
            ("api_tokens.1", "tok-fedcba9876543210"),
        ])
        .unwrap();
        let service = &policy.service;
        assert_eq!(service.max_concurrent_calls, Some(40));
        assert_eq!(service.breaker_failures, 0);
        assert_eq!(service.breaker_cooldown, Duration::from_millis(2500));
        assert_eq!(service.outcome_retry, Duration::from_secs(1800));
        assert_eq!(service.api_tokens.len(), 2);
        assert_eq!(service.api_tokens[1].expose(), "tok-fedcba9876543210");
        assert!(!format!("{policy:?}").contains("tok-"));
        let defaults = HostPolicy::from_pairs([("url", "http://crm/")])
            .unwrap()
            .service;
        assert_eq!(defaults, ServiceSettings::default());
        assert_eq!(defaults.breaker_failures, 5);
        // A token that is too short is refused, and the error does not repeat it.
        let error = HostPolicy::from_pairs([("api_tokens", "short-secret")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`api_tokens`") && error.contains("16 characters"),
            "{error}"
        );
        assert!(!error.contains("short-secret"), "{error}");
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
