//! The tenants a service routes for: each scheme by name with the tokens that may use it, and
//! the server-wide tokens. Built whole from a schemes file and swapped whole at a reload, so
//! a call sees one consistent set from start to end.

use super::ServeError;
use super::auth::Tokens;
use crate::admission::default_share;
use crate::prepare::{PreparedScheme, Rules, prepare};
use crate::scheme_file::SchemeFile;
use callroute_plugin::scheme::HostPolicy;
use callroute_plugin::scheme::fields;
use std::collections::HashMap;

/// One tenant: its scheme, and who may route its calls.
#[derive(Debug)]
struct Tenant {
    scheme: PreparedScheme,
    tokens: Tokens,
}

/// The tenants of a service.
#[derive(Debug, Default)]
pub struct Tenants {
    by_name: HashMap<String, Tenant>,
    server: Tokens,
}

/// What a reload changed, by scheme name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// New schemes.
    pub added: Vec<String>,
    /// Schemes no longer in the file.
    pub removed: Vec<String>,
    /// Schemes whose fields (or the secrets they refer to) changed.
    pub changed: Vec<String>,
}

impl Tenants {
    /// The tenants of `file`, each held to a default share of a pool of `pool` calls unless
    /// it sets its own `max_concurrent_calls`.
    ///
    /// At a reload (`previous` given): a scheme whose fields are unchanged (the same pairs, the
    /// same secrets) is kept as it was, its calls in flight, breakers and connections carrying
    /// on; a changed one keeps its calls in flight counted against its share (and its
    /// breakers, if their settings did not change); and a new or changed scheme that cannot
    /// be read (an invalid field, an `${env:…}` that is not set) fails the reload, so the
    /// previous set goes on serving rather than lock its tenant out.
    pub fn build(
        file: &SchemeFile,
        pool: u32,
        rules: Rules,
        previous: Option<&Tenants>,
    ) -> Result<Tenants, ServeError> {
        let server = server_tokens(&file.server)?;
        let mut by_name = HashMap::new();
        for (i, entry) in file.schemes.iter().enumerate() {
            let name = entry.name.clone().ok_or(ServeError::Unnamed(i + 1))?;
            let prepared = prepare(entry.pairs.clone(), rules);
            let before = previous.and_then(|p| p.by_name.get(&name));
            let scheme = match before {
                Some(kept) if kept.scheme.identity() == prepared.identity() => kept.scheme.clone(),
                _ if previous.is_some() && prepared.problem().is_some() => {
                    return Err(ServeError::Scheme {
                        name,
                        problem: prepared.problem().unwrap_or_default().to_owned(),
                    });
                }
                Some(old) => prepared.carry_over(&old.scheme),
                None => prepared,
            };
            let tokens = match scheme.problem() {
                // Its tokens may be what could not be read: only a server-wide token may
                // see what its calls fail with.
                Some(problem) => {
                    tracing::warn!(scheme = %name, %problem, "every call of this scheme will fail");
                    Tokens::locked()
                }
                None => Tokens::new(&scheme.policy().service.api_tokens),
            };
            by_name.insert(name, Tenant { scheme, tokens });
        }
        let share = default_share(pool, by_name.len());
        for tenant in by_name.values() {
            tenant.scheme.set_default_share(share);
        }
        Ok(Tenants { by_name, server })
    }

    /// What changed from `previous` to these.
    pub fn changes_since(&self, previous: &Tenants) -> Changes {
        let mut changes = Changes::default();
        for (name, tenant) in &self.by_name {
            match previous.by_name.get(name) {
                None => changes.added.push(name.clone()),
                Some(old) if old.scheme.identity() != tenant.scheme.identity() => {
                    changes.changed.push(name.clone())
                }
                Some(_) => {}
            }
        }
        changes.removed = previous
            .by_name
            .keys()
            .filter(|name| !self.by_name.contains_key(*name))
            .cloned()
            .collect();
        for list in [
            &mut changes.added,
            &mut changes.removed,
            &mut changes.changed,
        ] {
            list.sort_unstable();
        }
        changes
    }

    /// Scheme `name` and its tokens.
    pub(super) fn get(&self, name: &str) -> Option<(&PreparedScheme, &Tokens)> {
        self.by_name.get(name).map(|t| (&t.scheme, &t.tokens))
    }

    /// The server-wide tokens.
    pub(super) fn server_tokens(&self) -> &Tokens {
        &self.server
    }

    /// Whether any token is configured, server-wide or for a scheme.
    pub fn any_tokens(&self) -> bool {
        !self.server.is_empty() || self.by_name.values().any(|t| !t.tokens.is_empty())
    }

    /// The schemes anyone who reaches the server may route (no token needed), sorted.
    pub fn open_schemes(&self) -> Vec<&str> {
        let mut open: Vec<&str> = self
            .by_name
            .iter()
            .filter(|(_, t)| self.server.is_empty() && t.tokens.is_empty())
            .map(|(name, _)| name.as_str())
            .collect();
        open.sort_unstable();
        open
    }

    /// Whether `token` is one of some scheme's.
    pub(super) fn some_scheme_accepts(&self, token: &str) -> bool {
        self.by_name
            .values()
            .fold(false, |found, t| found | t.tokens.accepts(token))
    }

    /// The schemes' names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Each scheme by name.
    pub fn schemes(&self) -> impl Iterator<Item = (&str, &PreparedScheme)> {
        self.by_name.iter().map(|(n, t)| (n.as_str(), &t.scheme))
    }
}

/// The server-wide tokens of a `[server]` table (the fields the table of fields allows
/// there: `api_tokens`; `${env:…}` allowed).
pub(crate) fn server_tokens(pairs: &[(String, String)]) -> Result<Tokens, ServeError> {
    let pairs = crate::secrets::resolve(pairs.to_vec()).map_err(ServeError::Server)?;
    if let Some((key, _)) = pairs
        .iter()
        .find(|(k, _)| !fields::of(k).is_some_and(|f| f.server))
    {
        let known: Vec<&str> = fields::FIELDS
            .iter()
            .filter(|f| f.server)
            .map(|f| f.name)
            .collect();
        return Err(ServeError::Server(format!(
            "field `{key}` is unknown (known: {})",
            known.join(", ")
        )));
    }
    let policy = HostPolicy::from_pairs(pairs).map_err(|e| ServeError::Server(e.to_string()))?;
    Ok(Tokens::new(&policy.service.api_tokens))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::auth::Access;

    const SERVER: &str = "srv-0123456789abcdef";
    const ACME: &str = "acme-0123456789abcdef";
    const GLOBEX: &str = "globex-0123456789abcdef";

    fn tenants(toml: &str) -> Tenants {
        let file = SchemeFile::parse(toml, "t.toml").unwrap();
        Tenants::build(&file, 1000, Rules::Component, None).unwrap()
    }

    fn answer(tenants: &Tenants, name: &str, token: Option<&str>) -> &'static str {
        match tenants.access(name, token) {
            Access::Route(_) => "route",
            Access::Unauthorized => "401",
            Access::NotFound => "404",
        }
    }

    #[test]
    fn without_tokens_every_scheme_is_open_and_unknown_ones_are_404() {
        let t = tenants("[[scheme]]\nname = \"acme\"\nurl = \"http://a/\"\n");
        assert_eq!(answer(&t, "acme", None), "route");
        assert_eq!(answer(&t, "acme", Some("anything")), "route");
        assert_eq!(answer(&t, "globex", None), "404");
    }

    #[test]
    fn no_answer_tells_a_caller_which_tenants_exist() {
        let t = tenants(&format!(
            "[server]\napi_tokens = [\"{SERVER}\"]\n\
             [[scheme]]\nname = \"acme\"\nurl = \"http://a/\"\napi_tokens = [\"{ACME}\"]\n\
             [[scheme]]\nname = \"globex\"\nurl = \"http://g/\"\napi_tokens = \"{GLOBEX}\"\n"
        ));
        assert_eq!(answer(&t, "acme", Some(ACME)), "route");
        assert_eq!(answer(&t, "acme", Some(SERVER)), "route");
        // Without a valid token: the same answer whether the scheme exists or not.
        for name in ["acme", "nobody"] {
            assert_eq!(answer(&t, name, None), "401", "{name}");
            assert_eq!(answer(&t, name, Some("wrong-0123456789abcdef")), "401");
        }
        // Another tenant's token: as if the scheme did not exist.
        assert_eq!(answer(&t, "acme", Some(GLOBEX)), "404");
        assert_eq!(answer(&t, "nobody", Some(GLOBEX)), "404");
        assert_eq!(answer(&t, "nobody", Some(SERVER)), "404");
        assert!(t.may_read_metrics(Some(SERVER)));
        assert!(!t.may_read_metrics(Some(ACME)));
        assert!(!t.may_read_metrics(None));
    }

    #[test]
    fn a_server_token_guards_schemes_without_their_own() {
        let t = tenants(&format!(
            "[server]\napi_tokens = \"{SERVER}\"\n[[scheme]]\nname = \"acme\"\nurl = \"http://a/\"\n"
        ));
        assert_eq!(answer(&t, "acme", None), "401");
        assert_eq!(answer(&t, "acme", Some(SERVER)), "route");
    }

    #[test]
    fn a_scheme_the_host_cannot_read_is_locked() {
        let t = tenants(
            "[[scheme]]\nname = \"acme\"\nurl = \"http://a/\"\nfallback = \"not a destination!\"\n",
        );
        assert_eq!(answer(&t, "acme", None), "401");
    }

    #[test]
    fn server_settings_are_checked() {
        let file = |toml: &str| SchemeFile::parse(toml, "t.toml").unwrap();
        let error = Tenants::build(
            &file("name = \"a\"\nurl = \"http://a/\"\n[server]\nlisten = 1\n"),
            10,
            Rules::Component,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("`listen` is unknown"), "{error}");
        let error = Tenants::build(
            &file("name = \"a\"\nurl = \"http://a/\"\n[server]\napi_tokens = \"short\"\n"),
            10,
            Rules::Component,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("16 characters") && !error.contains("short\""),
            "{error}"
        );
    }

    #[test]
    fn a_reload_keeps_unchanged_schemes_and_shares_the_pool_again() {
        let one = tenants("[[scheme]]\nname = \"a\"\nurl = \"http://a/\"\n");
        let (a, _) = one.get("a").unwrap();
        assert_eq!(a.share_limit(), 1000);
        let file = SchemeFile::parse(
            "[[scheme]]\nname = \"a\"\nurl = \"http://a/\"\n\
             [[scheme]]\nname = \"b\"\nurl = \"http://b/\"\nmax_concurrent_calls = 10\n",
            "t.toml",
        )
        .unwrap();
        let two = Tenants::build(&file, 1000, Rules::Component, Some(&one)).unwrap();
        let (kept, _) = two.get("a").unwrap();
        assert_eq!(kept.identity(), a.identity());
        // The same share, now half the pool.
        assert_eq!(a.share_limit(), 500);
        assert_eq!(two.get("b").unwrap().0.share_limit(), 10);
        assert_eq!(
            two.changes_since(&one),
            Changes {
                added: vec!["b".into()],
                ..Changes::default()
            }
        );
    }

    #[test]
    fn a_reload_that_would_lock_a_tenant_out_is_refused() {
        let one = tenants("[[scheme]]\nname = \"a\"\nurl = \"http://a/\"\n");
        let file = SchemeFile::parse(
            "[[scheme]]\nname = \"a\"\nurl = \"http://a/\"\napi_tokens = \"${env:CALLROUTE_TEST_UNSET_TOKEN}\"\n",
            "t.toml",
        )
        .unwrap();
        let error = Tenants::build(&file, 1000, Rules::Component, Some(&one))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("scheme `a`") && error.contains("CALLROUTE_TEST_UNSET_TOKEN"),
            "{error}"
        );
    }

    #[test]
    fn a_changed_scheme_keeps_its_calls_in_flight_counted() {
        let one =
            tenants("[[scheme]]\nname = \"a\"\nurl = \"http://a/\"\nmax_concurrent_calls = 2\n");
        let (a, _) = one.get("a").unwrap();
        let _in_flight = a.admit_for_test();
        let file = SchemeFile::parse(
            "[[scheme]]\nname = \"a\"\nurl = \"http://a/other\"\nmax_concurrent_calls = 2\n",
            "t.toml",
        )
        .unwrap();
        let two = Tenants::build(&file, 1000, Rules::Component, Some(&one)).unwrap();
        let (changed, _) = two.get("a").unwrap();
        assert_ne!(changed.identity(), a.identity());
        assert_eq!(changed.in_flight(), 1);
        assert_eq!(changed.share_limit(), 2);
    }
}
