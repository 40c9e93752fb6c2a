//! The web console `serve` answers at `/`: the tenants with their health, each one's recent
//! calls and their exchanges, its settings (secrets masked), and a form to try a call. It is
//! three files embedded in the binary (`host-harness/console/`), plain HTML, CSS and
//! JavaScript with nothing fetched from elsewhere, and reads everything from the
//! [admin API](super::admin) with the admin token the operator types in (kept in the tab's
//! session storage only).
//!
//! The page shows what CRMs answered, so it is held to a strict Content-Security-Policy: only
//! its own script and style run, and it talks only to this server. The script writes every
//! value as text, never as markup.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;

/// Where the console's script and style are served.
pub const ASSETS: &str = "/console/";

const PAGE: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/console.js");
const STYLE: &str = include_str!("../../console/console.css");

/// What the page may load and where it may connect: this server, nothing else.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The console's page.
pub fn page() -> Response<Full<Bytes>> {
    file("text/html; charset=utf-8", PAGE)
}

/// One of the console's files, by path under [`ASSETS`]; 404 for any other.
pub fn asset(path: &str) -> Response<Full<Bytes>> {
    match path.strip_prefix(ASSETS) {
        Some("console.js") => file("text/javascript; charset=utf-8", SCRIPT),
        Some("console.css") => file("text/css; charset=utf-8", STYLE),
        _ => super::http::rejection(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such file of the console".into(),
        ),
    }
}

fn file(content_type: &'static str, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        // A new binary serves a new console: never a stale script beside a newer page.
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        // Every file the page names is one this module serves.
        for reference in ["/console/console.js", "/console/console.css"] {
            assert!(PAGE.contains(reference), "{reference}");
            assert_eq!(asset(reference).status(), StatusCode::OK, "{reference}");
        }
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
        assert!(!SCRIPT.contains("innerHTML"), "values are written as text");
        assert_eq!(
            asset("/console/../Cargo.toml").status(),
            StatusCode::NOT_FOUND
        );
        let page = page();
        let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"));
    }
}
