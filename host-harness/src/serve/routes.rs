//! What `serve` answers at each path: one table of routes, matched by a maintained router
//! (`matchit`), and one canonical form for each name in a path.
//!
//! A scheme's name (and a call's id) in a path is read strictly: it must be percent-encoded
//! exactly as [`canonical`] writes it (the characters RFC 3986 allows in a path segment as
//! they are, everything else as `%XX` in upper case). Any other spelling (`%61cme` for `acme`,
//! `a+b` for `a b`, an empty segment, a doubled `/`) is not that name, so a proxy's path rules
//! in front of `serve` see the same names `serve` does.

use super::admin::Admin;
use super::auth::Access;
use super::http::{
    Names, read_call, rejection, response, text, token_of, unauthorized, unknown_scheme,
};
use super::{Service, Tenants, console, metrics};
use crate::outbound::HOP_HEADER;
use crate::prepare::PreparedScheme;
use crate::report::RouteReport;
use bytes::Bytes;
use callroute_plugin::outcome;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use std::sync::LazyLock;

/// An endpoint of `serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Health,
    Metrics,
    Console,
    ConsoleAsset,
    Route,
    Outcome,
    Admin(Admin),
}

/// Every path `serve` answers.
static ROUTES: LazyLock<matchit::Router<Endpoint>> = LazyLock::new(|| {
    let mut routes = matchit::Router::new();
    for (path, endpoint) in [
        ("/healthz", Endpoint::Health),
        ("/metrics", Endpoint::Metrics),
        ("/", Endpoint::Console),
        ("/console/{file}", Endpoint::ConsoleAsset),
        ("/v1/route/{scheme}", Endpoint::Route),
        ("/v1/outcome/{scheme}", Endpoint::Outcome),
        ("/v1/schemes", Endpoint::Admin(Admin::Schemes)),
        ("/v1/schemes/{scheme}", Endpoint::Admin(Admin::Scheme)),
        (
            "/v1/schemes/{scheme}/exchanges",
            Endpoint::Admin(Admin::Exchanges),
        ),
        (
            "/v1/schemes/{scheme}/exchanges/{call_id}",
            Endpoint::Admin(Admin::Exchange),
        ),
        ("/v1/schemes/{scheme}/try", Endpoint::Admin(Admin::Try)),
    ] {
        routes
            .insert(path, endpoint)
            .expect("the routes do not overlap");
    }
    routes
});

impl Service {
    /// Answer one HTTP request.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        // A webhook of a callroute (this one or another) routed back into a callroute: a
        // scheme pointed at its own server (its routes, or its trial calls). Answering would
        // call it again, without end.
        if path.starts_with("/v1/") && request.headers().contains_key(HOP_HEADER) {
            return rejection(
                StatusCode::LOOP_DETECTED,
                "loop-detected",
                "this request is a callroute webhook: a scheme's url points at a callroute \
                 server, which would call it again"
                    .into(),
            );
        }
        let Ok(found) = ROUTES.at(path) else {
            return rejection(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such endpoint; use /v1/route/{scheme}, /v1/outcome/{scheme}, /healthz, \
                 /metrics, / (the console) or /v1/schemes (the admin API)"
                    .into(),
            );
        };
        let endpoint = *found.value;
        let names = Names {
            scheme: found.params.get("scheme").map(segment),
            call_id: found.params.get("call_id").map(segment),
        };
        let get_only = |answer: fn() -> Response<Full<Bytes>>| {
            if request.method() == Method::GET {
                answer()
            } else {
                super::http::method_not_allowed("GET")
            }
        };
        match endpoint {
            Endpoint::Health => get_only(|| text(StatusCode::OK, "ok\n")),
            Endpoint::Console => get_only(console::page),
            Endpoint::ConsoleAsset if request.method() == Method::GET => console::asset(path),
            Endpoint::ConsoleAsset => super::http::method_not_allowed("GET"),
            Endpoint::Metrics if request.method() != Method::GET => {
                super::http::method_not_allowed("GET")
            }
            Endpoint::Metrics => {
                let tenants = self.tenants();
                if !tenants.may_read_metrics(token_of(&request)) {
                    self.metrics.unauthorized();
                    return unauthorized();
                }
                let depths = self.outbox.as_ref().map(|o| o.depths()).unwrap_or_default();
                let mut response = text(StatusCode::OK, self.metrics.render(&tenants, &depths));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static(metrics::CONTENT_TYPE),
                );
                response
            }
            Endpoint::Route => {
                let name = names.scheme.flatten();
                self.route(name.as_deref(), request).await
            }
            Endpoint::Outcome => {
                let name = names.scheme.flatten();
                self.outcome(name.as_deref(), request).await
            }
            Endpoint::Admin(admin) => self.admin(admin, names, request).await,
        }
    }

    /// The scheme named `name` that `request` may route and report for, or the answer that
    /// refuses it: 401 without a valid token (counted), 404 otherwise. Which tenants a server
    /// holds is not for its callers to learn: the answer names only what was asked for, and is
    /// the same for a scheme this caller may not use.
    pub(super) fn tenant<'t, 'n>(
        &self,
        tenants: &'t Tenants,
        name: Option<&'n str>,
        request: &Request<Incoming>,
    ) -> Result<(&'n str, &'t PreparedScheme), Box<Response<Full<Bytes>>>> {
        match (name, tenants.access(name, token_of(request))) {
            (Some(name), Access::Route(scheme)) => Ok((name, scheme)),
            (_, Access::Unauthorized) => {
                self.metrics.unauthorized();
                Err(Box::new(unauthorized()))
            }
            (name, _) => Err(Box::new(unknown_scheme(name.unwrap_or_default()))),
        }
    }

    /// `/v1/route/{scheme}`: route a PBX's call. `name` is `None` when the path's name is not
    /// in its canonical form: no scheme has it.
    async fn route(&self, name: Option<&str>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        // The set this call starts with; a reload meanwhile does not change its scheme.
        let tenants = self.tenants();
        let (name, scheme) = match self.tenant(&tenants, name, &request) {
            Ok(tenant) => tenant,
            Err(refused) => return *refused,
        };
        let format = outcome::requested_format(
            request
                .headers()
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok()),
            request
                .headers()
                .get(outcome::SIP_DOMAIN_HEADER)
                .and_then(|v| v.to_str().ok()),
        );
        let format = match format {
            Ok(format) => format,
            Err(e) => return rejection(StatusCode::BAD_REQUEST, "bad-request", e.message),
        };
        let call = match read_call(request, self.limits.read_timeout).await {
            Ok(call) => call,
            Err(e) => {
                let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
                return rejection(status, "bad-request", e.message);
            }
        };
        let report = {
            let _in_flight = self.calls.enter();
            self.router.route(scheme, &call).await
        };
        self.metrics.observe(name, &report);
        log_call(name, &report);
        // Only where an outcome could teach the memory: a scheme that remembers, and takes
        // outcome reports.
        let policy = scheme.policy();
        if policy.service.remember.is_some() && policy.outcome_url.is_some() {
            self.recent_callers.note(name, &call.call_id, &call.caller);
        }
        let answer = response(outcome::http_answer(
            &report.result,
            report.elapsed_ms(),
            &format,
        ));
        self.exchanges.record(name, &call, report);
        answer
    }
}

/// One line per call: scheme, outcome, error kind, elapsed time. The error is masked by the
/// router like every string of the report.
fn log_call(scheme: &str, report: &RouteReport) {
    let outcome = report.outcome();
    match report.error() {
        None => tracing::info!(
            target: "callroute::call",
            scheme,
            outcome,
            elapsed_ms = report.elapsed_ms(),
            "call routed"
        ),
        Some(e) => tracing::info!(
            target: "callroute::call",
            scheme,
            outcome,
            error_kind = e.kind.as_str(),
            error = %e.message,
            elapsed_ms = report.elapsed_ms(),
            "call not routed by the CRM"
        ),
    }
}

/// A path segment as a name: strictly percent-decoded, and only if it is written in its
/// canonical form ([`canonical`]); `None` otherwise.
pub(super) fn segment(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let name = String::from_utf8(decoded).ok()?;
    (!name.is_empty() && canonical(&name) == raw).then_some(name)
}

/// How a name is written in a path: the characters RFC 3986 allows in a segment (`pchar`:
/// unreserved, sub-delims, `:` and `@`) as they are, every other byte as `%XX` in upper case.
pub fn canonical(name: &str) -> String {
    callroute_plugin::request::percent_encode(name, |byte| {
        callroute_plugin::request::unreserved(byte) || b"!$&'()*+,;=:@".contains(&byte)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_has_one_spelling_in_a_path() {
        assert_eq!(segment("acme").as_deref(), Some("acme"));
        assert_eq!(segment("a%20b").as_deref(), Some("a b"));
        assert_eq!(
            segment("a+b").as_deref(),
            Some("a+b"),
            "a plus, never a space"
        );
        assert_eq!(segment("%D0%B0").as_deref(), Some("а"));
        for other in [
            "%61cme", "a%2Bb", "a%20", "%d0%b0", "%zz", "%2", "", "%FF", "a%2Fb",
        ] {
            let read = segment(other);
            assert!(
                read.is_none() || read.as_deref().is_some_and(|n| canonical(n) == other),
                "{other} -> {read:?}"
            );
        }
        assert_eq!(segment("%61cme"), None);
        assert_eq!(segment("a%20"), Some("a ".into()));
        assert_eq!(segment("a%2Fb"), Some("a/b".into()));
        for name in ["acme", "a b", "a+b", "a/b", "сервер", "x%y"] {
            assert_eq!(segment(&canonical(name)).as_deref(), Some(name));
        }
    }

    #[test]
    fn paths_find_their_endpoint_and_nothing_else_does() {
        let at = |path: &str| ROUTES.at(path).ok().map(|m| *m.value);
        assert_eq!(at("/v1/route/acme"), Some(Endpoint::Route));
        assert_eq!(
            at("/v1/schemes/acme/exchanges/c1"),
            Some(Endpoint::Admin(Admin::Exchange))
        );
        for path in [
            "/v1/route//v1/route/acme",
            "/v1/route/",
            "/v1/route",
            "/v1/route/acme/",
            "/v1/route/acme/x",
            "/v1/schemes/acme/exchange",
            "//healthz",
        ] {
            assert_eq!(at(path), None, "{path}");
        }
    }
}
