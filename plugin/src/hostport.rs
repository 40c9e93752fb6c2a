//! Hosts and ports as URLs (RFC 3986) and SIP URIs (RFC 3261) both write them: `host`,
//! `host:port`, `[v6]` and `[v6]:port`. Each caller then holds the host to its own rules.

/// A host and its port, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort<'a> {
    /// The host; an IPv6 address without its brackets.
    pub host: &'a str,
    /// Whether the host is a (valid) bracketed IPv6 address.
    pub ipv6: bool,
    /// The text after `:`, if there is one (possibly empty).
    pub port: Option<&'a str>,
}

/// Split `host[:port]`, checking only what the brackets promise: an IPv6 address inside.
pub fn split(text: &str) -> Result<HostPort<'_>, &'static str> {
    match text.strip_prefix('[') {
        Some(bracketed) => {
            let (v6, after) = bracketed
                .split_once(']')
                .ok_or("the IPv6 address has no closing `]`")?;
            if v6.parse::<std::net::Ipv6Addr>().is_err() {
                return Err("the bracketed host is not an IPv6 address");
            }
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or("junk after the IPv6 address")?,
                ),
            };
            Ok(HostPort {
                host: v6,
                ipv6: true,
                port,
            })
        }
        None => {
            let (host, port) = match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            };
            Ok(HostPort {
                host,
                ipv6: false,
                port,
            })
        }
    }
}

/// A port number from 1 to 65535, in digits only (`u16::from_str` would take `+80`).
pub fn port(text: &str) -> Option<u16> {
    let digits = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| text.parse::<u16>().ok())
        .flatten()
        .filter(|p| *p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports_split() {
        assert_eq!(
            split("crm.example.com:8080"),
            Ok(HostPort {
                host: "crm.example.com",
                ipv6: false,
                port: Some("8080")
            })
        );
        assert_eq!(
            split("[::1]").map(|h| (h.host, h.ipv6, h.port)),
            Ok(("::1", true, None))
        );
        assert_eq!(split("[::1]:5060").unwrap().port, Some("5060"));
        assert!(split("[::1").is_err());
        assert!(split("[zz]").is_err());
        assert!(split("[::1]x").is_err());
    }

    #[test]
    fn ports_are_digits_from_1_to_65535() {
        assert_eq!(port("1"), Some(1));
        assert_eq!(port("65535"), Some(65535));
        for bad in ["", "0", "65536", "99999999999", "-1", "+80", "80a", " 80"] {
            assert_eq!(port(bad), None, "{bad:?}");
        }
    }
}
