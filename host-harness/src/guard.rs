//! The outbound guard: the sandbox's only door to the network.
//!
//! Two checks, at two depths:
//!
//! - [`OutboundGuard`], per call: the component may reach exactly the host and port of its
//!   scheme's URL (and of its `fallback_url`, when it has one), nothing else;
//! - [`AddressPolicy`], per router: by default every address that is not publicly routable is
//!   refused (loopback, RFC 1918 and CGNAT private ranges, link-local including the cloud
//!   metadata address 169.254.169.254, ULA, multicast, unspecified, broadcast, and the
//!   IPv4-mapped and -compatible IPv6 spellings of all of them), so a tenant's webhook URL
//!   cannot be turned against the host's own network. The outbound client's connector checks
//!   each resolved address right before connecting to it, so DNS cannot swap in a different
//!   address after the check.

use callroute_plugin::scheme::Endpoint;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why the guard refused a connection. The text is safe to show: it names the host and
/// port, never a path or query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// The request went somewhere other than the scheme's URL.
    #[error("{requested} is not the scheme's host and port ({allowed})")]
    NotTheScheme {
        /// `host:port` the component asked for.
        requested: String,
        /// `host:port` of the scheme's URL.
        allowed: String,
    },
    /// The scheme's URL is invalid, so nothing may be reached.
    #[error("the scheme has no valid URL, so no request is allowed")]
    NoScheme,
    /// The address is not publicly routable and private networks are not allowed.
    #[error(
        "{host} resolves to {addr}, a {class} address; pass --allow-private-network to allow it"
    )]
    PrivateAddress {
        /// The host as written in the URL.
        host: String,
        /// The address it resolved to.
        addr: IpAddr,
        /// What kind of address it is (`loopback`, `private`, …).
        class: &'static str,
    },
    /// The request's URI has no host or an unsupported scheme.
    #[error("the request has no valid http(s) authority")]
    BadRequest,
}

/// The guard for one call: the only endpoints its component may reach.
#[derive(Debug, Clone)]
pub struct OutboundGuard {
    endpoints: Vec<Endpoint>,
}

impl OutboundGuard {
    /// A guard allowing only `endpoints` (none when the scheme's URL is invalid).
    pub fn new(endpoints: Vec<Endpoint>) -> Self {
        OutboundGuard { endpoints }
    }

    /// Check the request's target against the scheme's hosts and ports (and `http`/`https`).
    pub fn check_target(&self, uri: &http::Uri) -> Result<&Endpoint, Denial> {
        let primary = self.endpoints.first().ok_or(Denial::NoScheme)?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(Denial::BadRequest),
        };
        let authority = uri.authority().ok_or(Denial::BadRequest)?;
        let host = normalized_host(authority.host());
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let allowed = self
            .endpoints
            .iter()
            .find(|e| e.host == host && e.port == port && e.tls == tls);
        let Some(allowed) = allowed else {
            let requested = Endpoint {
                tls,
                host,
                port,
                path_and_query: String::new(),
            };
            return Err(Denial::NotTheScheme {
                requested: origin(&requested),
                allowed: origin(primary),
            });
        };
        Ok(allowed)
    }
}

/// A URI's host as endpoints hold it: lower case, an IPv6 address without its brackets.
pub fn normalized_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// `scheme://host:port` of an endpoint: what the guard compares, and all a denial shows.
fn origin(endpoint: &Endpoint) -> String {
    let scheme = if endpoint.tls { "https" } else { "http" };
    format!("{scheme}://{}", endpoint.authority())
}

/// The host's address policy, the same for every call of a router: which resolved addresses
/// a connection may go to.
#[derive(Debug, Clone, Copy, Default)]
pub struct AddressPolicy {
    /// Let connections reach loopback, private and link-local addresses.
    pub allow_private_network: bool,
}

impl AddressPolicy {
    /// Check one resolved address before connecting to it.
    pub fn check_addr(&self, host: &str, addr: IpAddr) -> Result<(), Denial> {
        if self.allow_private_network {
            return Ok(());
        }
        match non_public_class(addr) {
            None => Ok(()),
            Some(class) => Err(Denial::PrivateAddress {
                host: host.to_owned(),
                addr,
                class,
            }),
        }
    }
}

/// The class of an address that is not publicly routable, or `None` for a public address.
pub fn non_public_class(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    }
}

fn v4_class(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if a == 100 && (64..128).contains(&b) {
        Some("carrier-grade NAT")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() || a >= 240 {
        Some("reserved")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("IETF protocol assignment")
    } else if a == 198 && (18..20).contains(&b) {
        Some("benchmarking")
    } else {
        None
    }
}

fn v6_class(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible (::a.b.c.d) forms reach
    // the IPv4 address they embed, so they get its verdict.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_class(v4);
    }
    let segments = ip.segments();
    if segments[..6].iter().all(|&s| s == 0) {
        return v4_class(Ipv4Addr::from(
            ((segments[6] as u32) << 16) | segments[7] as u32,
        ))
        .or(Some("IPv4-compatible"));
    }
    match segments[0] {
        s if s & 0xfe00 == 0xfc00 => Some("unique local"),
        s if s & 0xffc0 == 0xfe80 => Some("link-local"),
        s if s & 0xffc0 == 0xfec0 => Some("site-local"),
        s if s & 0xff00 == 0xff00 => Some("multicast"),
        // NAT64 (64:ff9b::/96) embeds an IPv4 address too.
        0x0064 if segments[1] == 0xff9b && segments[2..6].iter().all(|&s| s == 0) => v4_class(
            Ipv4Addr::from(((segments[6] as u32) << 16) | segments[7] as u32),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Endpoint {
        Endpoint::parse(url).unwrap()
    }

    #[test]
    fn only_the_schemes_host_and_port_pass() {
        let guard = OutboundGuard::new(vec![
            endpoint("https://crm.example.com/route?k=1"),
            endpoint("http://backup.example.com:8080/"),
        ]);
        for ok in [
            "https://crm.example.com/other",
            "https://CRM.example.com:443/",
            "http://backup.example.com:8080/route",
        ] {
            guard.check_target(&ok.parse().unwrap()).unwrap();
        }
        for bad in [
            "https://crm.example.com:8443/",
            "http://crm.example.com/",
            "https://evil.example.com/",
            "https://crm.example.com.evil.com/",
            "http://backup.example.com/",
        ] {
            let err = guard.check_target(&bad.parse().unwrap()).unwrap_err();
            assert!(matches!(err, Denial::NotTheScheme { .. }), "{bad}: {err}");
        }
        let none = OutboundGuard::new(Vec::new());
        assert_eq!(
            none.check_target(&"http://x/".parse().unwrap())
                .unwrap_err(),
            Denial::NoScheme
        );
    }

    #[test]
    fn non_public_addresses_are_classified() {
        for (addr, class) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "unique local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::10.0.0.1", "private"),
            ("64:ff9b::10.0.0.1", "private"),
        ] {
            assert_eq!(
                non_public_class(addr.parse().unwrap()),
                Some(class),
                "{addr}"
            );
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(non_public_class(public.parse().unwrap()), None, "{public}");
        }
    }

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        let strict = AddressPolicy {
            allow_private_network: false,
        };
        let err = strict
            .check_addr("crm", "127.0.0.1".parse().unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("--allow-private-network"), "{err}");
        strict
            .check_addr("crm", "8.8.8.8".parse().unwrap())
            .unwrap();
        let open = AddressPolicy {
            allow_private_network: true,
        };
        open.check_addr("crm", "127.0.0.1".parse().unwrap())
            .unwrap();
    }
}
