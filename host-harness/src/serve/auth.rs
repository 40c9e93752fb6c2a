//! Who may route a tenant's calls: bearer tokens (`Authorization: Bearer …`), server-wide
//! (`[server] api_tokens`) or per scheme (`api_tokens`).
//!
//! Tokens are kept only as SHA-256 digests. A presented token is hashed once (one longer than
//! [`MAX_TOKEN_LEN`] is refused unhashed) and looked up by its digest in one map of every
//! tenant's digests, so the time it takes does not grow with the tenants nor depend on how
//! much of a token matched; tokens never reach a log, an error or a metric. The answers never
//! tell a caller which tenants exist:
//!
//! | the request's token | its scheme | answer |
//! |---|---|---|
//! | any or none | exists, needs no token (no server-wide tokens, none of its own) | routed |
//! | a server-wide token, or one of the scheme's | exists | routed |
//! | none, or one that matches nothing | exists, or auth is configured anywhere | 401 |
//! | valid, but for another scheme | exists or not | 404, as for an unknown scheme |
//! | none | unknown, and no auth configured anywhere | 404 |

use crate::prepare::PreparedScheme;
use callroute_plugin::scheme::ApiToken;
use sha2::{Digest as _, Sha256};

/// The longest token a request may present: no configured token is longer (a scheme's are
/// held to it: [`callroute_plugin::scheme::policy::MAX_API_TOKEN_LEN`]), and a longer one is
/// refused before it is hashed.
pub const MAX_TOKEN_LEN: usize = callroute_plugin::scheme::policy::MAX_API_TOKEN_LEN;

/// A set of bearer tokens, as digests.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    digests: Vec<Digest>,
    /// Required, but none is known: nothing but a server-wide token gets through.
    locked: bool,
}

/// A token's SHA-256 digest: what is kept and looked up, never the token.
pub type Digest = [u8; 32];

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

    /// The digests of these tokens.
    pub(super) fn digests(&self) -> &[Digest] {
        &self.digests
    }
}

/// Who a token belongs to: the server, and the schemes that list it.
#[derive(Debug, Default)]
pub(super) struct Owner {
    /// A server-wide token.
    pub(super) server: bool,
    /// The schemes whose `api_tokens` hold it.
    pub(super) schemes: Vec<String>,
}

/// The digest of a presented token: hashed once per request, then looked up by its digest in
/// one map of every tenant's tokens, so the time it takes does not grow with the tenants, nor
/// tell which exist. A token longer than [`MAX_TOKEN_LEN`] is not hashed at all.
pub(super) fn presented(token: &str) -> Option<Digest> {
    (token.len() <= MAX_TOKEN_LEN).then(|| digest(token))
}

#[cfg(test)]
thread_local! {
    /// How many tokens this thread hashed.
    pub(super) static DIGESTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn digest(token: &str) -> Digest {
    #[cfg(test)]
    DIGESTS.with(|n| n.set(n.get() + 1));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_show_and_an_overlong_one_is_not_hashed() {
        let tokens = Tokens::new(&[token("tok-0123456789abcdef")]);
        assert!(!format!("{tokens:?}").contains("tok-"));
        assert_eq!(presented(&"x".repeat(MAX_TOKEN_LEN + 1)), None);
        assert_eq!(presented("tok-0123456789abcdef"), Some(tokens.digests()[0]));
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
