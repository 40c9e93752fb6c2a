//! Who may route a tenant's calls: bearer tokens (`Authorization: Bearer …`), server-wide
//! (`[server] api_tokens`) or per scheme (`api_tokens`).
//!
//! Tokens are kept only as SHA-256 digests and compared in constant time; they never reach a
//! log, an error or a metric. The answers never tell a caller which tenants exist:
//!
//! | the request's token | its scheme | answer |
//! |---|---|---|
//! | any or none | exists, needs no token (no server-wide tokens, none of its own) | routed |
//! | a server-wide token, or one of the scheme's | exists | routed |
//! | none, or one that matches nothing | exists, or auth is configured anywhere | 401 |
//! | valid, but for another scheme | exists or not | 404, as for an unknown scheme |
//! | none | unknown, and no auth configured anywhere | 404 |

use super::tenants::Tenants;
use crate::prepare::PreparedScheme;
use callroute_plugin::scheme::ApiToken;
use sha2::{Digest, Sha256};

/// A set of bearer tokens, as digests.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
    /// Required, but none is known: nothing but a server-wide token gets through.
    locked: bool,
}

impl Tokens {
    /// The digests of `tokens`.
    pub fn new(tokens: &[ApiToken]) -> Tokens {
        Tokens {
            digests: tokens.iter().map(|t| digest(t.expose())).collect(),
            locked: false,
        }
    }

    /// A set that requires a token and accepts none.
    pub fn locked() -> Tokens {
        Tokens {
            digests: Vec::new(),
            locked: true,
        }
    }

    /// Whether no token is required.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty() && !self.locked
    }

    /// Whether `presented` is one of the tokens. Every digest is compared, each in constant
    /// time: how long this takes says nothing about which, or how much, of a token matched.
    pub fn accepts(&self, presented: &str) -> bool {
        let presented = digest(presented);
        self.digests.iter().fold(false, |found, known| {
            let differ = known
                .iter()
                .zip(&presented)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found | (differ == 0)
        })
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The token an `Authorization: Bearer …` header value carries.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// What a request for a scheme may do.
#[derive(Debug)]
pub enum Access<'a> {
    /// Route with this scheme.
    Route(&'a PreparedScheme),
    /// 401: no valid token.
    Unauthorized,
    /// 404: no such scheme, as far as this caller may know.
    NotFound,
}

impl Tenants {
    /// What a request for scheme `name` presenting `token` may do (see the module docs).
    pub fn access(&self, name: &str, token: Option<&str>) -> Access<'_> {
        let scheme = self.get(name);
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
        let server = self.server_tokens().accepts(token);
        if let Some((scheme, tokens)) = scheme
            && (server | tokens.accepts(token))
        {
            return Access::Route(scheme);
        }
        if server || self.some_scheme_accepts(token) {
            Access::NotFound
        } else {
            Access::Unauthorized
        }
    }

    /// Whether `/metrics` may be read with `token`: by anyone when there are no server-wide
    /// tokens, else only with one (it names every tenant).
    pub fn may_read_metrics(&self, token: Option<&str>) -> bool {
        self.server_tokens().is_empty() || token.is_some_and(|t| self.server_tokens().accepts(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_matched_whole() {
        let tokens = Tokens::new(&[token("tok-0123456789abcdef"), token("tok-fedcba9876543210")]);
        assert!(tokens.accepts("tok-0123456789abcdef"));
        assert!(tokens.accepts("tok-fedcba9876543210"));
        for wrong in [
            "",
            "tok-0123456789abcde",
            "tok-0123456789abcdeff",
            "TOK-0123456789ABCDEF",
        ] {
            assert!(!tokens.accepts(wrong), "{wrong}");
        }
        assert!(!Tokens::default().accepts("tok-0123456789abcdef"));
        assert!(!format!("{tokens:?}").contains("tok-"));
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer   abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }

    fn token(text: &str) -> ApiToken {
        callroute_plugin::scheme::HostPolicy::from_pairs([("api_tokens", text)])
            .unwrap()
            .service
            .api_tokens
            .remove(0)
    }
}
