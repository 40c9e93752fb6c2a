//! The tenants a service routes for: each scheme by name with the tokens that may use it, and
//! the server-wide tokens. Built whole from a schemes file and swapped whole at a reload, so
//! a call sees one consistent set from start to end.

use super::ServeError;
use super::auth::{Access, Digest, Owner, Tokens, presented};
use crate::admission::default_share;
use crate::prepare::{PreparedScheme, Rules, prepare};
use crate::scheme_file::SchemeFile;
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
    /// Every token, server-wide or a scheme's, by its digest ([`super::auth`]).
    by_digest: HashMap<Digest, Owner>,
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
        let mut by_digest: HashMap<Digest, Owner> = HashMap::new();
        for digest in server.digests() {
            by_digest.entry(*digest).or_default().server = true;
        }
        for (name, tenant) in &by_name {
            for digest in tenant.tokens.digests() {
                by_digest
                    .entry(*digest)
                    .or_default()
                    .schemes
                    .push(name.clone());
            }
        }
        Ok(Tenants {
            by_name,
            server,
            by_digest,
        })
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

    /// Whose token has `digest`, if anyone's.
    pub(super) fn owner(&self, digest: &Digest) -> Option<&Owner> {
        self.by_digest.get(digest)
    }

    /// The schemes' names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The scheme named `name`.
    pub fn scheme(&self, name: &str) -> Option<&PreparedScheme> {
        self.get(name).map(|(scheme, _)| scheme)
    }

    /// Each scheme by name.
    pub fn schemes(&self) -> impl Iterator<Item = (&str, &PreparedScheme)> {
        self.by_name.iter().map(|(n, t)| (n.as_str(), &t.scheme))
    }
}

impl Tenants {
    /// What a request for scheme `name` presenting `token` may do (see the [`super::auth`]
    /// docs). `name` is `None` for a name no scheme can have (not in its canonical form).
    pub fn access(&self, name: Option<&str>, token: Option<&str>) -> Access<'_> {
        let scheme = name.and_then(|name| self.get(name));
        if let Some((scheme, tokens)) = scheme
            && self.server_tokens().is_empty()
            && tokens.is_empty()
        {
            return Access::Route(scheme);
        }
        let Some(token) = token else {
            return if scheme.is_none() && !self.any_tokens() {
                Access::NotFound
            } else {
                Access::Unauthorized
            };
        };
        let Some(owner) = presented(token).and_then(|d| self.owner(&d)) else {
            return Access::Unauthorized;
        };
        match scheme {
            Some((scheme, _))
                if owner.server || owner.schemes.iter().any(|s| Some(s.as_str()) == name) =>
            {
                Access::Route(scheme)
            }
            // A valid token, for other schemes: as if this one did not exist.
            _ => Access::NotFound,
        }
    }

    /// Whether `/metrics` may be read with `token`: by anyone when there are no server-wide
    /// tokens, else only with one (it names every tenant).
    pub fn may_read_metrics(&self, token: Option<&str>) -> bool {
        self.server_tokens().is_empty()
            || token
                .and_then(presented)
                .and_then(|d| self.owner(&d))
                .is_some_and(|o| o.server)
    }

    /// Whether `token` is a server-wide token.
    pub fn is_server_token(&self, token: Option<&str>) -> bool {
        token
            .and_then(presented)
            .and_then(|d| self.owner(&d))
            .is_some_and(|o| o.server)
    }
}

/// The server-wide tokens of a `[server]` table ([`crate::prepare::server_settings`]).
pub(crate) fn server_tokens(pairs: &[(String, String)]) -> Result<Tokens, ServeError> {
    crate::prepare::server_settings(pairs)
        .map(|tokens| Tokens::new(&tokens))
        .map_err(ServeError::Server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::auth::{Access, DIGESTS};

    const SERVER: &str = "srv-0123456789abcdef";
    const ACME: &str = "acme-0123456789abcdef";
    const GLOBEX: &str = "globex-0123456789abcdef";

    fn tenants(toml: &str) -> Tenants {
        let file = SchemeFile::parse(toml, "t.toml").unwrap();
        Tenants::build(&file, 1000, Rules::Component, None).unwrap()
    }

    fn answer(tenants: &Tenants, name: &str, token: Option<&str>) -> &'static str {
        match tenants.access(Some(name), token) {
            Access::Route(_) => "route",
            Access::Unauthorized => "401",
            Access::NotFound => "404",
        }
    }

    fn many_tenants(count: usize) -> Tenants {
        let mut toml = String::from("[server]\napi_tokens = \"srv-0123456789abcdef\"\n");
        for i in 0..count {
            toml.push_str(&format!(
                "[[scheme]]\nname = \"t{i}\"\nurl = \"http://a/\"\napi_tokens = \"tok-{i:016}\"\n"
            ));
        }
        let file = SchemeFile::parse(&toml, "t.toml").unwrap();
        Tenants::build(&file, 1000, Rules::Component, None).unwrap()
    }

    fn hashed(work: impl FnOnce()) -> usize {
        DIGESTS.with(|n| n.set(0));
        work();
        DIGESTS.with(|n| n.get())
    }

    #[test]
    fn a_token_is_hashed_once_whatever_the_tenants_and_a_long_one_never() {
        let tenants = many_tenants(400);
        let long = "x".repeat(256 * 1024);
        for (name, token) in [
            ("t7", "tok-0000000000000007"),
            ("t7", "wrong-0123456789abcdef"),
        ] {
            assert_eq!(
                hashed(|| {
                    let _ = tenants.access(Some(name), Some(token));
                }),
                1,
                "{token}"
            );
        }
        for name in ["t7", "nobody"] {
            assert_eq!(
                hashed(|| assert!(matches!(
                    tenants.access(Some(name), Some(&long)),
                    Access::Unauthorized
                ))),
                0
            );
        }
        assert_eq!(
            hashed(|| assert!(!tenants.may_read_metrics(Some(&long)))),
            0
        );
        assert!(matches!(
            tenants.access(Some("t7"), Some("tok-0000000000000007")),
            Access::Route(_)
        ));
        assert!(matches!(
            tenants.access(Some("t8"), Some("tok-0000000000000007")),
            Access::NotFound
        ));
        assert!(matches!(
            tenants.access(Some("t8"), Some("srv-0123456789abcdef")),
            Access::Route(_)
        ));
        // Matched whole: a prefix, a longer token or another case is not the token.
        for wrong in [
            "tok-000000000000000",
            "tok-00000000000000077",
            "TOK-0000000000000007",
        ] {
            assert!(
                matches!(
                    tenants.access(Some("t7"), Some(wrong)),
                    Access::Unauthorized
                ),
                "{wrong}"
            );
        }
        assert!(!format!("{tenants:?}").contains("tok-0"));
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
