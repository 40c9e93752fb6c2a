//! The one table of scheme fields: each field's name, whether it is a list, who reads it, and
//! how an operator may see its value.
//!
//! Everything that needs to know the fields derives from [`FIELDS`]: the component's refusal
//! of unknown keys and its list keys ([`super::lists`]), and on the host the settings view,
//! the set of secret values masked in every record, the pairs handed to the component, and
//! the keys allowed in a schemes file's `[server]` table. The readers themselves (the match
//! arms of [`super::Scheme::from_pairs`] and of the host policy) are held to this table by a
//! test that gives every field a valid and an invalid value.

/// Who reads a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// The component alone: how to ask the CRM and how to read its answer.
    Component,
    /// The component, and the host too, with the same code ([`super::HostPolicy`]): what the
    /// host enforces whatever the component does.
    Both,
    /// The host alone. The component accepts the field but is never handed it: it needs
    /// none of it, and a component built against an older contract would refuse it.
    Host,
}

/// How an operator may see a field's value, which says what of it is secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// As written: nothing in it is secret.
    Plain,
    /// A URL: its user information and the values of its query are secret.
    Url,
    /// A template: shown when it is only placeholders (`+{caller}`); its literal text is
    /// secret (an API key written into a parameter).
    Template,
    /// Secret whole: never shown.
    Secret,
}

/// One field of a scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The key (`url`), or the prefix of a family of keys (`params.`, ending in a dot).
    pub name: &'static str,
    /// A list: one key, or indexed keys `name.0`, `name.1`, … (see [`super::lists`]).
    pub list: bool,
    /// Who reads it.
    pub reader: Reader,
    /// How it may be shown.
    pub shown: Shown,
    /// Also allowed in a schemes file's `[server]` table (the server-wide setting).
    pub server: bool,
    /// For outcome reports only: handed to the component in a `report` call, never in a
    /// `route` call (routing needs none of it, and a component built against a contract
    /// without reports would refuse it).
    pub report: bool,
}

const fn field(name: &'static str, reader: Reader, shown: Shown) -> Field {
    Field {
        name,
        list: false,
        reader,
        shown,
        server: false,
        report: false,
    }
}

const fn report(name: &'static str, reader: Reader, shown: Shown) -> Field {
    Field {
        report: true,
        ..field(name, reader, shown)
    }
}

const fn list(name: &'static str, reader: Reader, shown: Shown) -> Field {
    Field {
        list: true,
        ..field(name, reader, shown)
    }
}

use Reader::{Both, Component, Host};
use Shown::{Plain, Secret, Template, Url};

/// Every field a scheme may hold, in the order the README lists them.
pub const FIELDS: &[Field] = &[
    field("name", Both, Plain),
    field("url", Both, Url),
    field("method", Component, Plain),
    field("submission", Component, Plain),
    field("import", Component, Plain),
    field("destination_field", Component, Plain),
    field("jsonrpc_method", Component, Plain),
    field("ring_timeout_secs", Both, Plain),
    field("ring_strategy", Component, Plain),
    field("max_destinations", Component, Plain),
    field("target_field", Component, Plain),
    field("ring_timeout_field", Component, Plain),
    field("response_timeout_secs", Both, Plain),
    field("fallback_url", Both, Url),
    field("retries", Component, Plain),
    list("fallback", Both, Plain),
    list("allowed_prefixes", Both, Plain),
    list("allowed_sip_domains", Both, Plain),
    list("signing_secret", Component, Secret),
    field("max_concurrent_calls", Both, Plain),
    field("breaker_failures", Both, Plain),
    field("breaker_cooldown_secs", Both, Plain),
    field("remember_secs", Host, Plain),
    Field {
        server: true,
        ..list("api_tokens", Host, Secret)
    },
    field("params.", Component, Template),
    field("headers.", Component, Secret),
    report("outcome_url", Both, Url),
    report("outcome_method", Component, Plain),
    report("outcome_submission", Component, Plain),
    report("outcome_params.", Component, Template),
    field("outcome_retry_hours", Host, Plain),
];

impl Field {
    /// Whether this is a family of keys (`params.<name>`).
    pub fn is_family(&self) -> bool {
        self.name.ends_with('.')
    }
}

/// The field `key` belongs to: the field itself, an item of a list (`fallback.0`; any suffix,
/// the list's own rules judge the index), or a member of a family (`params.uuid`).
pub fn of(key: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| {
        if f.is_family() {
            key.starts_with(f.name)
        } else {
            key == f.name
                || (f.list
                    && key
                        .strip_prefix(f.name)
                        .is_some_and(|rest| rest.starts_with('.')))
        }
    })
}

/// The known keys, as an error about an unknown one lists them.
pub struct Known;

impl std::fmt::Display for Known {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, field) in FIELDS.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(field.name)?;
            if field.is_family() {
                f.write_str("<name>")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_find_their_field() {
        assert_eq!(of("url").map(|f| f.name), Some("url"));
        assert_eq!(of("fallback.3").map(|f| f.name), Some("fallback"));
        assert_eq!(of("params.uuid").map(|f| f.name), Some("params."));
        assert_eq!(of("headers.X-Key").map(|f| f.shown), Some(Secret));
        assert!(of("url.0").is_none(), "not a list");
        assert!(of("fallbackx").is_none());
        assert!(of("api_token").is_none());
        assert_eq!(of("outcome_params.status").map(|f| f.report), Some(true));
        assert_eq!(of("params.status").map(|f| f.report), Some(false));
        assert_eq!(
            Known.to_string().split(", ").last(),
            Some("outcome_retry_hours")
        );
    }
}
