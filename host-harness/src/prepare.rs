//! Preparing a scheme: the one place the host turns a scheme's pairs into what it routes
//! with. `callroute route`, `serve` (at start and at every reload) and `callroute check` all
//! call [`prepare`], so each refuses exactly what the others refuse.
//!
//! Preparing a scheme:
//! 1. keeps each key once, with its last value (what `wasi:config`, a map, holds);
//! 2. resolves `${env:…}` references ([`crate::secrets`]);
//! 3. reads what the host enforces itself ([`HostPolicy`]) with the component's own code;
//! 4. under [`Rules::Component`], reads the whole scheme as the component will
//!    ([`Scheme::from_pairs`], the same code compiled natively), so a scheme the component
//!    would refuse is refused here, naming the field;
//! 5. derives its secrets ([`Secrets`]), so every problem, record and label is masked;
//! 6. builds its guard, breakers and share.
//!
//! A scheme with a problem is still prepared: every call of it fails as `config`, and a
//! reload refuses it ([`crate::serve::tenants`]).

#[cfg(test)]
use crate::admission::InShare;
use crate::admission::Share;
use crate::guard::OutboundGuard;
use crate::outbound::breaker::{BreakerSettings, Breakers};
use crate::redact::{MASK, Secrets, only_placeholders};
use callroute_plugin::scheme::fields::{self, Reader, Shown};
use callroute_plugin::scheme::{ApiToken, Endpoint, HostPolicy, Scheme, SchemeError};
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_config::WasiConfigVariables;

/// Whose rules a scheme is read by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// This host's own component (embedded, or the same plugin): every field is judged as the
    /// component judges it, before any call.
    Component,
    /// A component loaded with `--plugin`, which may read keys of its own: the host judges
    /// only what it enforces itself, and the component judges the rest at each call.
    Host,
}

/// A scheme ready to route with: its pairs for `wasi:config`, and what the host itself
/// enforces ([`HostPolicy`]: the endpoints the sandbox may reach, the deadline, the static
/// fallback, the allowlist). Cheap to clone.
#[derive(Clone)]
pub struct PreparedScheme {
    /// This scheme's identity (see [`identity`]): its calls share keep-alive connections
    /// with each other and with no other scheme.
    pub(crate) id: u64,
    /// Why the scheme cannot be used at all, each problem masked.
    problems: Arc<[String]>,
    /// The pairs the component reads to route a call: all but the host's own fields and the
    /// report's.
    pub(crate) vars: Arc<WasiConfigVariables>,
    /// The pairs the component reads to report an outcome: all but the host's own fields.
    pub(crate) report_vars: Arc<WasiConfigVariables>,
    /// The endpoints the sandbox may reach, checked on every request of every call.
    pub(crate) guard: Arc<OutboundGuard>,
    /// What the host enforces, whatever the component does.
    pub(crate) policy: Arc<HostPolicy>,
    /// The scheme's name (`name`; empty when it has none), for logs.
    pub(crate) name: Arc<str>,
    /// Its calls in flight, held to its `max_concurrent_calls` or the service's default share.
    pub(crate) share: Arc<Share>,
    /// Its CRM endpoints' circuit breakers, shared by all its calls.
    breakers: Arc<Breakers>,
    /// The same for its outcome reports, apart: an `outcome_url` on the CRM's own origin that
    /// fails (or a backlog of reports) never opens the breaker its calls go through.
    report_breakers: Arc<Breakers>,
    /// Its secrets, masked in everything that leaves the process.
    secrets: Secrets,
    /// Its settings as an operator may see them (see [`PreparedScheme::settings`]).
    settings: Arc<[(String, String)]>,
    /// Its pairs with every secret replaced by [`STAND_IN`] (see [`PreparedScheme::stand_in`]).
    stand_in: Arc<[(String, String)]>,
    /// Whose rules it was prepared under.
    rules: Rules,
}

/// What stands for each secret of a scheme in its stand-in ([`PreparedScheme::stand_in`]).
pub const STAND_IN: &str = "secret";

/// Prepare `pairs` under `rules` (see the module docs).
pub fn prepare(pairs: Vec<(String, String)>, rules: Rules) -> PreparedScheme {
    let pairs = last_value_of_each_key(pairs);
    let mut referenced = crate::secrets::referenced_values(&pairs);
    let written = pairs.clone();
    let mut problems = crate::secrets::problems(&pairs);
    let pairs = match crate::secrets::resolve(pairs.clone()) {
        Ok(resolved) => resolved,
        Err(_) => pairs,
    };
    // A CRM's host from the environment is secret: breakers' labels and errors show it on
    // its own.
    for ((key, value), (_, written)) in pairs.iter().zip(&written) {
        if authority_from_environment(written)
            && fields::of(key).is_some_and(|f| f.shown == Shown::Url)
            && let Ok(endpoint) = Endpoint::parse(value)
        {
            referenced.push(endpoint.origin.to_string());
            referenced.push(endpoint.origin.host);
        }
    }
    let secrets = Secrets::of_scheme(&pairs, referenced);
    let problem = |error: SchemeError| problem_of(error, &written);
    let policy = match HostPolicy::from_pairs(pairs.iter().map(|(k, v)| (k, v))) {
        Ok(policy) => policy,
        Err(error) => {
            problems.push(problem(error));
            HostPolicy::default()
        }
    };
    // The component needs none of the host's own fields, and the tokens are secrets.
    let handed: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| handed_to_component(k))
        .cloned()
        .collect();
    if rules == Rules::Component
        && problems.is_empty()
        // As the component is handed them.
        && let Err(error) = Scheme::from_pairs(handed.iter().map(|(k, v)| (k, v)))
    {
        problems.push(problem(error));
    }
    let problems: Vec<String> = problems.iter().map(|p| secrets.mask(p)).collect();
    let name: Arc<str> = pairs
        .iter()
        .find(|(k, _)| k == "name")
        .map_or("", |(_, v)| v.as_str())
        .into();
    let service = &policy.service;
    let breaker_settings = BreakerSettings {
        failures: service.breaker_failures,
        cooldown: service.breaker_cooldown,
    };
    let breakers = Breakers::new(&name, breaker_settings, secrets.clone());
    let report_breakers = Breakers::new(&name, breaker_settings, secrets.clone());
    PreparedScheme {
        stand_in: stand_in_pairs(&pairs, &written),
        rules,
        settings: shown_settings(&written, &secrets),
        id: identity(&pairs),
        problems: problems.into(),
        guard: Arc::new(OutboundGuard::new(policy.endpoints())),
        share: Share::new(service.max_concurrent_calls.unwrap_or(u32::MAX)),
        breakers,
        report_breakers,
        name,
        secrets,
        policy: Arc::new(policy),
        report_vars: Arc::new(handed.iter().cloned().collect::<WasiConfigVariables>()),
        // A route call is never handed the report's fields: routing needs none of them, and a
        // component of a contract without reports would refuse them.
        vars: Arc::new(
            handed
                .into_iter()
                .filter(|(k, _)| !fields::of(k).is_some_and(|f| f.report))
                .collect::<WasiConfigVariables>(),
        ),
    }
}

/// The server-wide settings of a schemes file's `[server]` table: its bearer tokens
/// (`api_tokens`, the only field the table of fields allows there; `${env:…}` allowed). `Err`
/// says what is wrong, never a token.
pub fn server_settings(pairs: &[(String, String)]) -> Result<Vec<ApiToken>, String> {
    let pairs = crate::secrets::resolve(pairs.to_vec())?;
    if let Some((key, _)) = pairs
        .iter()
        .find(|(k, _)| !fields::of(k).is_some_and(|f| f.server))
    {
        let known: Vec<&str> = fields::FIELDS
            .iter()
            .filter(|f| f.server)
            .map(|f| f.name)
            .collect();
        return Err(format!(
            "field `{key}` is unknown (known: {})",
            known.join(", ")
        ));
    }
    HostPolicy::from_pairs(pairs)
        .map(|policy| policy.service.api_tokens)
        .map_err(|e| e.to_string())
}

impl PreparedScheme {
    /// Prepare flat scheme pairs under the host's rules only ([`Rules::Host`]): what a
    /// component of one's own, loaded with `--plugin`, is given. A router prepares under its
    /// component's rules ([`crate::Router::prepare`]).
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        prepare(pairs, Rules::Host)
    }

    /// This scheme as the next version of `old` (the same tenant, changed fields): the calls
    /// `old` still has in flight count against this one's share, and its breakers carry on
    /// if their settings and the endpoints they guard are the same (new endpoints get new
    /// breakers, which mask the new secrets in their labels).
    pub fn carry_over(mut self, old: &PreparedScheme) -> PreparedScheme {
        let limit = self.share.limit();
        self.share = old.share.clone();
        self.share.set_limit(limit);
        if self.breakers.settings() == old.breakers.settings()
            && self.policy.endpoints() == old.policy.endpoints()
        {
            self.breakers = old.breakers.clone();
            self.report_breakers = old.report_breakers.clone();
        }
        self
    }

    /// This scheme with none of its secrets, for a trial against a sample answer (which sends
    /// nothing anywhere): every value the table of fields shows as secret, the literal text
    /// of a parameter and a URL's query values are [`STAND_IN`], a URL with any part from the
    /// environment is `http(s)://secret.invalid/`, and the host's own fields are left out. So nothing a trial
    /// shows is a secret, and nothing needs masking: what the operator wrote comes back as
    /// written, and masking cannot tell them they guessed a secret. It shares this scheme's
    /// share and breakers.
    pub fn stand_in(&self) -> PreparedScheme {
        let mut stand_in = prepare(self.stand_in.to_vec(), self.rules);
        stand_in.share = self.share.clone();
        stand_in.breakers = self.breakers.clone();
        stand_in.report_breakers = self.report_breakers.clone();
        stand_in
    }

    /// A place in this scheme's share, as a call takes one.
    #[cfg(test)]
    pub(crate) fn admit_for_test(&self) -> InShare {
        self.share.try_enter().expect("room in the share")
    }

    /// Hold this scheme to `limit` calls in flight, unless it sets its own
    /// `max_concurrent_calls` (a service gives each tenant a default share of its pool).
    pub fn set_default_share(&self, limit: u32) {
        if self.policy.service.max_concurrent_calls.is_none() {
            self.share.set_limit(limit);
        }
    }

    /// What the host enforces for this scheme.
    pub fn policy(&self) -> &HostPolicy {
        &self.policy
    }

    /// Its calls in flight now.
    pub fn in_flight(&self) -> u32 {
        self.share.in_flight()
    }

    /// The most calls it may have in flight.
    pub fn share_limit(&self) -> u32 {
        self.share.limit()
    }

    /// Its CRM endpoints' breakers.
    pub fn breakers(&self) -> &Arc<Breakers> {
        &self.breakers
    }

    /// Its outcome reports' breakers (apart from its calls').
    pub fn report_breakers(&self) -> &Arc<Breakers> {
        &self.report_breakers
    }

    /// The longest the CRM may take.
    pub fn response_timeout(&self) -> Duration {
        self.policy.response_timeout
    }

    /// This scheme's identity: the same pairs (secrets resolved) give the same identity.
    pub fn identity(&self) -> u64 {
        self.id
    }

    /// Its settings as an operator may see them (`serve`'s admin API and console): every key
    /// in the order written, each value as the table of fields says it may be shown
    /// ([`Shown`]): as written for plain fields (an `${env:…}` reference, not its value), a
    /// URL with the values of its query and its user information as [`MASK`], a parameter
    /// that is only placeholders (`{caller}`) as it is, and every other value (headers, the
    /// signing secret, tokens, literal parameters, keys the table does not know) as the mask.
    pub fn settings(&self) -> &[(String, String)] {
        &self.settings
    }

    /// Its secrets, as everything shown of it masks them.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// Why this scheme cannot route anything, if so (the first problem).
    pub fn problem(&self) -> Option<&str> {
        self.problems.first().map(String::as_str)
    }

    /// Every problem of this scheme (what `callroute check` lists), masked.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

impl std::fmt::Debug for PreparedScheme {
    /// The scheme's name and identity, never its values (they hold secrets).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedScheme")
            .field("name", &self.name)
            .field("identity", &self.id)
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

/// Whether the component is handed `key`: every key but the host's own fields (the
/// component needs none of them, and the tokens are secrets).
fn handed_to_component(key: &str) -> bool {
    fields::of(key).is_none_or(|f| f.reader != Reader::Host)
}

/// Whether a URL as written takes its host (or port, or user information) from the
/// environment.
fn authority_from_environment(written: &str) -> bool {
    let rest = written.split_once("://").map_or(written, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    from_environment(&rest[..end])
}

/// Whether a value as written refers to the environment.
fn from_environment(written: &str) -> bool {
    written.contains("${env:")
}

/// A reader's error as a problem: one about a field whose value comes from the environment
/// quotes none of that value (each `quoted` part of its reason is masked).
fn problem_of(error: SchemeError, written: &[(String, String)]) -> String {
    match error {
        SchemeError::Invalid { field, reason }
            if written
                .iter()
                .any(|(key, value)| *key == field && from_environment(value)) =>
        {
            let mut parts = reason.split('`');
            let mut unquoted = parts.next().unwrap_or_default().to_owned();
            for (i, part) in parts.enumerate() {
                unquoted.push('`');
                unquoted.push_str(if i % 2 == 0 { MASK } else { part });
            }
            SchemeError::Invalid {
                field,
                reason: unquoted,
            }
            .to_string()
        }
        error => error.to_string(),
    }
}

/// The settings an operator may see (see [`PreparedScheme::settings`]), from the pairs as
/// written.
fn shown_settings(written: &[(String, String)], secrets: &Secrets) -> Arc<[(String, String)]> {
    written
        .iter()
        .map(|(key, value)| {
            let shown = match fields::of(key).map(|f| f.shown) {
                Some(Shown::Plain) => value.clone(),
                Some(Shown::Url) => url_shown(value),
                Some(Shown::Template) if only_placeholders(value) => value.clone(),
                _ => MASK.to_owned(),
            };
            // A literal that happens to be a secret's value is masked too.
            (key.clone(), secrets.mask(&shown))
        })
        .collect()
}

/// The pairs of a scheme's stand-in (see [`PreparedScheme::stand_in`]), from its pairs resolved
/// and as written.
fn stand_in_pairs(
    resolved: &[(String, String)],
    written: &[(String, String)],
) -> Arc<[(String, String)]> {
    resolved
        .iter()
        .zip(written)
        .filter(|((key, _), _)| handed_to_component(key))
        .map(|((key, value), (_, written))| {
            let value = match fields::of(key).map(|f| f.shown) {
                Some(Shown::Plain) => value.clone(),
                // Any part of it from the environment: none of it is kept.
                Some(Shown::Url) if from_environment(written) => {
                    let (scheme, _) = value.split_once("://").unwrap_or(("http", ""));
                    format!("{scheme}://{STAND_IN}.invalid/")
                }
                Some(Shown::Url) => url_with(value, STAND_IN),
                Some(Shown::Template) if only_placeholders(value) => value.clone(),
                _ => STAND_IN.to_owned(),
            };
            (key.clone(), value)
        })
        .collect()
}

/// A URL with its user information and its query's values masked.
fn url_shown(url: &str) -> String {
    url_with(url, MASK)
}

/// A URL with its user information and its query's values replaced by `mask`.
fn url_with(url: &str, mask: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut shown = match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
            match authority.rfind('@') {
                Some(at) => format!("{scheme}://{mask}{}", &rest[at..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    };
    if let Some(query) = query {
        let names: Vec<String> = form_urlencoded::parse(query.as_bytes())
            .map(|(name, _)| format!("{name}={mask}"))
            .collect();
        shown.push('?');
        shown.push_str(&names.join("&"));
    }
    shown
}

/// `pairs` with each key once, in the place it first came, with the value it last had.
fn last_value_of_each_key(pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut distinct: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    let mut index = std::collections::HashMap::new();
    for (key, value) in pairs {
        match index.get(&key) {
            Some(&i) => distinct[i] = (key, value),
            None => {
                index.insert(key.clone(), distinct.len());
                distinct.push((key, value));
            }
        }
    }
    distinct
}

/// A scheme's identity: a hash of all its pairs, its name among them, so two tenants never
/// share connections, while the same scheme prepared again (per call, or at a reload) finds
/// its connections where it left them.
fn identity(pairs: &[(String, String)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    pairs.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests;
