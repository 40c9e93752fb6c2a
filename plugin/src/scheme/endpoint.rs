//! CRM URLs: [`Endpoint`] (a scheme's `url` and `fallback_url`) and its [`Origin`], where
//! requests go.
//!
//! The one place that knows how a URL names an origin: `http`/`https`, the default ports 80
//! and 443, a host in lower case with an IPv6 literal's brackets off. The component builds its
//! requests from an `Endpoint`; the host's guard reads a request's URI with
//! [`Origin::from_uri`] and lets it through only when it has the [same
//! origin](Endpoint::same_origin) as one of the scheme's endpoints; the host's connection
//! pool is keyed by `Origin` too. (Spin's `OutboundUrl` is the model.)

use crate::error::excerpt;
use std::fmt;

/// `scheme://host:port`: where a request goes, without the path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `true` for `https`.
    pub tls: bool,
    /// The host name or IP literal: lower case, an IPv6 address without brackets.
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
}

/// `Some(true)` for `https`, `Some(false)` for `http` (in any case), `None` for any other
/// URI scheme.
fn is_tls(scheme: &str) -> Option<bool> {
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Some(true),
        "http" => Some(false),
        _ => None,
    }
}

/// The port an `http` (80) or `https` (443) URL without one goes to.
pub fn default_port(tls: bool) -> u16 {
    if tls { 443 } else { 80 }
}

impl Origin {
    /// The origin of a request URI, from its parts as an HTTP library splits them: the scheme
    /// (`http` or `https`, in any case), the host as written (brackets around an IPv6
    /// literal, any case) and the explicit port. `None` for any other scheme.
    pub fn from_uri(scheme: &str, host: &str, port: Option<u16>) -> Option<Origin> {
        let tls = is_tls(scheme)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_ascii_lowercase();
        Some(Origin {
            tls,
            host,
            port: port.unwrap_or(default_port(tls)),
        })
    }

    /// `host:port`, with brackets around an IPv6 literal.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `https` or `http`.
    pub fn uri_scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.uri_scheme(), self.authority())
    }
}

/// A CRM URL: its origin, and the path and query requests ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Where requests go.
    pub origin: Origin,
    /// The path and query as written in the scheme (`/` when empty), percent-encoded where
    /// a URL cannot carry a character as is.
    pub path_and_query: String,
}

impl Endpoint {
    /// Parse and check a CRM URL. The error text never repeats the URL's query.
    ///
    /// An absolute `http://` or `https://` URL: a host name, IPv4 address or bracketed IPv6
    /// address, an optional port from 1 to 65535 (else 80 or 443), then the path and query,
    /// where what a URL cannot carry as is (a space, `<`, `"`, non-ASCII text…) is
    /// percent-encoded as a browser would. A `#fragment` is never sent, so it is dropped.
    /// (Parsed here rather than with the `http` crate's `Uri`: the component is
    /// size-budgeted, and `Uri` also turned an out-of-range port such as `:65536` into "no
    /// port", silently calling port 80.)
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("must be an absolute http:// or https:// URL")?;
        if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("must be an absolute http:// or https:// URL".into());
        }
        if is_tls(scheme).is_none() {
            return Err(format!(
                "scheme `{}` is not supported (use http or https)",
                scheme.to_ascii_lowercase()
            ));
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(split);
        if authority.contains('@') {
            return Err("credentials in the URL are not supported; send them in [headers]".into());
        }
        let (host, port) = split_host_port(authority)?;
        let origin = Origin::from_uri(scheme, host, port)
            .ok_or("must be an absolute http:// or https:// URL")?;
        if path_and_query.chars().any(char::is_control) {
            return Err("the path or query holds a control character".into());
        }
        let path_and_query = match percent_encoded(path_and_query) {
            p if p.is_empty() => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p,
        };
        Ok(Endpoint {
            origin,
            path_and_query,
        })
    }

    /// Whether requests to `origin` go where this endpoint's do.
    pub fn same_origin(&self, origin: &Origin) -> bool {
        self.origin == *origin
    }

    /// The URL without its query string: safe for logs and error messages (queries often
    /// carry API keys).
    pub fn redacted(&self) -> String {
        let path = self.path_and_query.split('?').next().unwrap_or("/");
        format!("{}{path}", self.origin)
    }
}

/// A path and query with every byte that RFC 3986 does not allow there as is percent-encoded
/// (`%` is kept: what is already encoded stays so).
fn percent_encoded(path_and_query: &str) -> String {
    crate::request::percent_encode(path_and_query, |byte| {
        crate::request::unreserved(byte) || b"!$&'()*+,;=:@/?%".contains(&byte)
    })
}

/// Split a URL's authority into its host (as written, an IPv6 address without brackets) and
/// its port, if one is written.
fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let split = crate::hostport::split(authority)?;
    if split.host.is_empty() {
        return Err("has no host".into());
    }
    if !split.ipv6
        && !split
            .host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err(format!(
            "`{}` is not a host name or IP address",
            excerpt(split.host, 64)
        ));
    }
    let port = match split.port {
        // `http://host:/` is the default port (RFC 3986).
        None | Some("") => None,
        Some(port) => Some(crate::hostport::port(port).ok_or_else(|| {
            format!(
                "port `{}` is not a port number from 1 to 65535",
                excerpt(port, 16)
            )
        })?),
    };
    Ok((split.host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_out_of_range_are_refused_not_the_default_port() {
        for port in ["65536", "99999999999", "-1", "0", "80a", "+80"] {
            let msg = Endpoint::parse(&format!("http://crm.example.com:{port}/route?k=SECRET"))
                .unwrap_err();
            assert!(msg.contains(&format!("port `{port}`")), "{port}: {msg}");
            assert!(!msg.contains("SECRET"), "{msg}");
        }
        for (url, port) in [
            ("http://crm:65535/", 65535),
            ("http://crm:1/", 1),
            ("http://crm:/", 80),
            ("https://crm/", 443),
            ("https://[::1]:8443/", 8443),
        ] {
            assert_eq!(Endpoint::parse(url).unwrap().origin.port, port, "{url}");
        }
    }

    #[test]
    fn urls_are_parsed_without_the_http_crate() {
        let e = Endpoint::parse("HTTPS://CRM.Example.com:8443/a/b?x=1&y=%20#frag").unwrap();
        assert_eq!(
            (&e.origin, e.path_and_query.as_str()),
            (
                &Origin {
                    tls: true,
                    host: "crm.example.com".into(),
                    port: 8443
                },
                "/a/b?x=1&y=%20"
            )
        );
        let e = Endpoint::parse("http://10.0.0.5?k=1").unwrap();
        assert_eq!(
            (e.origin.host.as_str(), e.path_and_query.as_str()),
            ("10.0.0.5", "/?k=1")
        );
        // What a URL cannot carry as is goes percent-encoded, as a browser sends it.
        for (url, sent) in [
            (
                "http://crm/ä?city=Київ",
                "/%C3%A4?city=%D0%9A%D0%B8%D1%97%D0%B2",
            ),
            ("http://crm/a b?q=<\"x\">", "/a%20b?q=%3C%22x%22%3E"),
            ("http://crm/a%20b?k=`{}`", "/a%20b?k=%60%7B%7D%60"),
        ] {
            assert_eq!(Endpoint::parse(url).unwrap().path_and_query, sent, "{url}");
        }
        for bad in [
            "http://",
            "http:///path",
            "http://[::1/",
            "http://[zz]/",
            "http://crm/a\tb",
            "http://cr m/",
            "//crm/",
            "mailto:x@y",
            "ftp://crm/",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} was accepted");
        }
        // The URL's scheme is judged first, whatever follows it.
        for url in [
            "FTP://crm/",
            "ftp://",
            "ftp://user@crm/",
            "ftp://crm:99999/",
        ] {
            let error = Endpoint::parse(url).unwrap_err();
            assert!(
                error.contains("scheme `ftp` is not supported"),
                "{url}: {error}"
            );
        }
    }

    #[test]
    fn a_request_uri_has_the_origin_of_the_url_it_was_built_from() {
        let endpoint = Endpoint::parse("https://CRM.example.com/route?k=1").unwrap();
        for (scheme, host, port) in [
            ("https", "crm.example.com", None),
            ("HTTPS", "CRM.Example.COM", Some(443)),
        ] {
            let origin = Origin::from_uri(scheme, host, port).unwrap();
            assert!(endpoint.same_origin(&origin), "{scheme} {host} {port:?}");
        }
        for (scheme, host, port) in [
            ("http", "crm.example.com", None),
            ("https", "crm.example.com", Some(8443)),
            ("https", "crm.example.com.evil", None),
        ] {
            let origin = Origin::from_uri(scheme, host, port).unwrap();
            assert!(!endpoint.same_origin(&origin), "{scheme} {host} {port:?}");
        }
        assert_eq!(Origin::from_uri("ftp", "crm", None), None);
        let v6 = Origin::from_uri("http", "[2001:DB8::1]", Some(9000)).unwrap();
        assert_eq!(v6.host, "2001:db8::1");
        assert_eq!(v6.to_string(), "http://[2001:db8::1]:9000");
        assert!(
            Endpoint::parse("http://[2001:db8::1]:9000/x")
                .unwrap()
                .same_origin(&v6)
        );
    }

    #[test]
    fn redacted_url_drops_the_query() {
        let e = Endpoint::parse("https://crm.example.com/api/route?token=SECRET").unwrap();
        assert_eq!(e.redacted(), "https://crm.example.com:443/api/route");
        let e = Endpoint::parse("http://[::1]:9000").unwrap();
        assert_eq!(e.origin.host, "::1");
        assert_eq!(e.origin.authority(), "[::1]:9000");
        assert_eq!(e.path_and_query, "/");
    }
}
