//! The outbound guard: the sandbox's only door to the network.
//!
//! Two checks, at two depths:
//!
//! - [`OutboundGuard`], per call: the component may reach exactly the host and port of its
//!   scheme's URL (and of its `fallback_url`, when it has one), nothing else;
//! - [`AddressPolicy`], per router: by default only globally routable unicast addresses pass,
//!   and never one of this host's own, so a tenant's webhook URL cannot be turned against the
//!   host or its network. `--allow-private-network` lifts the whole policy (for a CRM on the
//!   host's own network, such as the local CRM of the demo and the tests on loopback). The
//!   outbound client's connector checks each resolved address right before connecting to it,
//!   so DNS cannot swap in a different address after the check.
//!
//! # Only global unicast passes
//!
//! [`non_public_class`] names the class of every address that is not global unicast, after
//! the IANA IPv4 and IPv6 Special-Purpose Address Registries (as Rust's unstable
//! `Ipv4Addr::is_global` and `Ipv6Addr::is_global` read them, and as smokescreen and Spin's
//! blocked networks decide), a little stricter where noted:
//!
//! - IPv4: "this network" `0/8` (and unspecified `0.0.0.0`), private `10/8`, `172.16/12` and
//!   `192.168/16`, carrier-grade NAT `100.64/10`, loopback `127/8`, link-local `169.254/16`
//!   (with the cloud metadata address `169.254.169.254`), IETF protocol assignments
//!   `192.0.0/24` (whole: its two global anycast addresses, PCP and TURN, are no CRM),
//!   documentation `192.0.2/24`, `198.51.100/24` and `203.0.113/24`, the deprecated 6to4 relay
//!   anycast `192.88.99/24`, benchmarking `198.18/15`, multicast `224/4`, reserved `240/4`
//!   and broadcast `255.255.255.255`;
//! - IPv6: everything outside global unicast `2000::/3` (unspecified `::`, loopback `::1`,
//!   discard-only `100::/64`, local-use NAT64 `64:ff9b:1::/48`, unique local `fc00::/7`,
//!   link-local `fe80::/10`, site-local `fec0::/10`, multicast `ff00::/8`, and the rest as
//!   reserved, such as SRv6 SIDs `5f00::/16`), and inside it IETF protocol assignments
//!   `2001::/23` (whole, with Teredo `2001::/32` and benchmarking `2001:2::/48`: std keeps a
//!   few anycast and ORCHID prefixes there global, none of them a CRM), documentation
//!   `2001:db8::/32` and `3fff::/20`, and 6to4 `2002::/16` (whole, as std does: 6to4 is
//!   deprecated, and a host with a 6to4 tunnel sends `2002:a00:1::1` to `10.0.0.1` itself).
//!
//! IPv6 spellings of IPv4 addresses: an IPv4-mapped `::ffff:a.b.c.d` (which a dual-stack
//! socket connects to over IPv4) and a NAT64 `64:ff9b::a.b.c.d` (which DNS64 synthesises on
//! IPv6-only networks) get the verdict of the IPv4 address they embed, so `::ffff:8.8.8.8`
//! passes and `64:ff9b::10.0.0.1` is private. The deprecated IPv4-compatible `::a.b.c.d` and
//! the SIIT IPv4-translated `::ffff:0:a.b.c.d` are outside `2000::/3` and only reach anything
//! through a translator or tunnel on the host's own network, so they are always refused:
//! named after the embedded address's class when it has one (`::ffff:0:127.0.0.1` is
//! loopback), else after their own form.
//!
//! # This host's own addresses
//!
//! An address assigned to one of this host's interfaces is refused too, even a global one: a
//! connection to it never leaves the host and reaches services that listen on all addresses
//! behind a firewall that only filters traffic from outside. The policy reads the interface
//! addresses when it is made and again when they are more than [`HOST_ADDRESSES_TTL`] old at a
//! check (addresses come and go: DHCP, IPv6 temporary addresses, a cloud's secondary
//! addresses). If they cannot be read, it logs a warning and keeps what it knew (at first
//! only loopback, which the classes refuse anyway). An IPv4-mapped or NAT64 spelling of an own
//! IPv4 address is refused as well.
//!
//! Not covered: NAT64 with a network-specific prefix (RFC 6052) looks like global unicast, so
//! the translator must refuse to reach non-global IPv4 addresses (as RFC 6052 requires), and
//! other hosts on the host's own public subnet pass.

use callroute_plugin::scheme::{Endpoint, Origin};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

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
    /// The address is not global unicast, or is one of this host's own, and private networks
    /// are not allowed.
    #[error(
        "{host} resolves to {addr}, a {class} address; pass --allow-private-network to allow it"
    )]
    PrivateAddress {
        /// The host as written in the URL.
        host: String,
        /// The address it resolved to.
        addr: IpAddr,
        /// What kind of address it is (its [`AddressClass::name`] is in the text).
        class: AddressClass,
    },
    /// The address is where this `callroute serve` itself listens: refused under every
    /// policy, as a scheme calling its own server would loop.
    #[error("{host} resolves to {addr}, where this callroute server itself listens")]
    OwnListener {
        /// The host as written in the URL.
        host: String,
        /// The address and port it resolved to.
        addr: SocketAddr,
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
    /// A guard allowing only `endpoints` (none when the scheme cannot be read: its calls fail
    /// as `config` before the component runs, and a component that ran anyway would reach
    /// nothing).
    pub fn new(endpoints: Vec<Endpoint>) -> Self {
        OutboundGuard { endpoints }
    }

    /// Check the request's target against the scheme's hosts and ports (and `http`/`https`).
    pub fn check_target(&self, uri: &http::Uri) -> Result<&Endpoint, Denial> {
        let primary = self.endpoints.first().ok_or(Denial::NoScheme)?;
        let authority = uri.authority().ok_or(Denial::BadRequest)?;
        let requested = Origin::from_uri(
            uri.scheme_str().unwrap_or_default(),
            authority.host(),
            authority.port_u16(),
        )
        .ok_or(Denial::BadRequest)?;
        self.endpoints
            .iter()
            .find(|e| e.same_origin(&requested))
            .ok_or_else(|| Denial::NotTheScheme {
                requested: requested.to_string(),
                allowed: primary.origin.to_string(),
            })
    }
}

/// How long the host's interface addresses are trusted before a check reads them again.
pub const HOST_ADDRESSES_TTL: Duration = Duration::from_secs(5);

/// The host's address policy, the same for every call of a router: which resolved addresses
/// a connection may go to. Cheap to clone: clones share the host's addresses.
#[derive(Debug, Clone)]
pub struct AddressPolicy {
    /// Let connections reach any address: loopback, private, link-local, this host's own.
    allow_private_network: bool,
    /// This host's interface addresses; `None` when private networks are allowed.
    own: Option<Arc<HostAddresses>>,
}

impl AddressPolicy {
    /// The policy of a router: with `allow_private_network`, every address passes; without
    /// it, only global unicast addresses that are not this host's own (see the
    /// [module docs](self)). Reads this host's interface addresses now (a warning is logged
    /// if they cannot be read), and again at a check once they are [`HOST_ADDRESSES_TTL`] old.
    pub fn new(allow_private_network: bool) -> Self {
        Self::with_reader(
            allow_private_network,
            read_host_addresses,
            HOST_ADDRESSES_TTL,
        )
    }

    /// [`AddressPolicy::new`] reading the host's addresses with `read`, cached for `ttl`.
    fn with_reader(allow_private_network: bool, read: AddressReader, ttl: Duration) -> Self {
        let own = (!allow_private_network).then(|| {
            let own = HostAddresses::new(read, ttl);
            own.refresh(&mut own.lock());
            Arc::new(own)
        });
        AddressPolicy {
            allow_private_network,
            own,
        }
    }

    /// Whether every address may be reached (`--allow-private-network`).
    pub fn allow_private_network(&self) -> bool {
        self.allow_private_network
    }

    /// Check one resolved address and port before connecting to it: never where this process
    /// serves ([`Listening`]), and then [`AddressPolicy::check_addr`].
    pub fn check_socket(&self, host: &str, addr: SocketAddr) -> Result<(), Denial> {
        if is_own_listener(addr) {
            return Err(Denial::OwnListener {
                host: host.to_owned(),
                addr,
            });
        }
        self.check_addr(host, addr.ip())
    }

    /// Check one resolved address before connecting to it: [`Denial::PrivateAddress`] for an
    /// address that is not global unicast or is this host's own, unless private networks
    /// are allowed.
    pub fn check_addr(&self, host: &str, addr: IpAddr) -> Result<(), Denial> {
        let Some(own) = &self.own else {
            return Ok(());
        };
        let class = match non_public_class(addr) {
            Some(class) => class,
            None if own.contains(addr) => AddressClass::HostOwn,
            None => return Ok(()),
        };
        Err(Denial::PrivateAddress {
            host: host.to_owned(),
            addr,
            class,
        })
    }
}

impl Default for AddressPolicy {
    /// The strict policy, [`AddressPolicy::new`]`(false)`.
    fn default() -> Self {
        AddressPolicy::new(false)
    }
}

/// Reads this host's interface addresses.
type AddressReader = fn() -> std::io::Result<Vec<IpAddr>>;

/// This host's interface addresses, read again when they are older than `ttl`.
#[derive(Debug)]
struct HostAddresses {
    read: AddressReader,
    ttl: Duration,
    known: Mutex<Known>,
}

/// The host's addresses as last read, and when that read was (successful or not).
#[derive(Debug, Default)]
struct Known {
    /// A handful: a `Vec` (unlike a set, it can start empty in a `static`).
    addrs: Vec<IpAddr>,
    read_at: Option<Instant>,
}

impl HostAddresses {
    /// Addresses read with `read`, trusted for `ttl`; nothing is read yet.
    const fn new(read: AddressReader, ttl: Duration) -> Self {
        HostAddresses {
            read,
            ttl,
            known: Mutex::new(Known {
                addrs: Vec::new(),
                read_at: None,
            }),
        }
    }

    /// The lock on what is known (nothing panics while holding it, but a poisoned lock still
    /// holds a consistent set).
    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Read the addresses again; on failure, warn and keep what was known.
    fn refresh(&self, known: &mut Known) {
        match (self.read)() {
            Ok(addrs) => known.addrs = addrs,
            Err(error) => tracing::warn!(
                %error,
                known = known.addrs.len(),
                "cannot read this host's interface addresses: the outbound guard refuses its own \
                 global addresses only as far as it knew them (loopback is always refused)"
            ),
        }
        known.read_at = Some(Instant::now());
    }

    /// Whether `addr` is one of the host's addresses, or an IPv6 spelling of one of its IPv4
    /// addresses that the classes let pass (IPv4-mapped or NAT64).
    fn contains(&self, addr: IpAddr) -> bool {
        let mut known = self.lock();
        if known.read_at.is_none_or(|at| at.elapsed() >= self.ttl) {
            self.refresh(&mut known);
        }
        known.addrs.contains(&addr)
            || matches!(addr, IpAddr::V6(v6)
                if embedded_v4(v6).is_some_and(|v4| known.addrs.contains(&IpAddr::V4(v4))))
    }
}

/// The addresses this process serves on (`callroute serve`), while it does.
static LISTENING: Mutex<Vec<SocketAddr>> = Mutex::new(Vec::new());

/// A listening address of this process that webhooks may not reach (see
/// [`AddressPolicy::check_socket`]), for as long as this value lives.
#[derive(Debug)]
pub struct Listening(SocketAddr);

impl Listening {
    /// Refuse webhooks to `addr` (an unspecified address stands for every address of this
    /// host, on its port) until the returned value is dropped.
    pub fn register(addr: SocketAddr) -> Listening {
        LISTENING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(addr);
        Listening(addr)
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let mut listening = LISTENING.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = listening.iter().position(|a| *a == self.0) {
            listening.swap_remove(i);
        }
    }
}

/// This host's addresses as the listener check sees them (under every policy).
static HOST_ADDRESSES: HostAddresses = HostAddresses::new(read_host_addresses, HOST_ADDRESSES_TTL);

/// Whether a connection to `addr` would reach one of this process's listening sockets.
fn is_own_listener(addr: SocketAddr) -> bool {
    let ip = addr.ip().to_canonical();
    let listening = LISTENING.lock().unwrap_or_else(PoisonError::into_inner);
    listening.iter().any(|l| {
        l.port() == addr.port()
            && (l.ip().to_canonical() == ip
                || (l.ip().is_unspecified()
                    && (ip.is_loopback() || ip.is_unspecified() || HOST_ADDRESSES.contains(ip))))
    })
}

/// This host's interface addresses, as `getifaddrs` lists them.
fn read_host_addresses() -> std::io::Result<Vec<IpAddr>> {
    Ok(if_addrs::get_if_addrs()?
        .iter()
        .map(if_addrs::Interface::ip)
        .collect())
}

/// The IPv4 address that an IPv4-mapped (`::ffff:a.b.c.d`) or NAT64 (`64:ff9b::a.b.c.d`)
/// address reaches.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    match ip.segments() {
        [0, 0, 0, 0, 0, 0xffff, ..] | [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(last_32_bits(ip)),
        _ => None,
    }
}

/// The IPv4 address in the last 32 bits of an IPv6 address.
fn last_32_bits(ip: Ipv6Addr) -> Ipv4Addr {
    let [.., a, b, c, d] = ip.octets();
    Ipv4Addr::new(a, b, c, d)
}

/// Why an address is refused without `--allow-private-network`: the kind of address that is
/// not global unicast (see the [module docs](self)), or this host's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// `0.0.0.0` or `::` (which Linux connects to loopback).
    Unspecified,
    /// The rest of "this network", `0/8`.
    ThisNetwork,
    /// `127/8` or `::1`.
    Loopback,
    /// RFC 1918: `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// Shared address space (RFC 6598), `100.64/10`.
    CarrierGradeNat,
    /// `169.254/16` (with the cloud metadata address) or `fe80::/10`.
    LinkLocal,
    /// IETF protocol assignments, `192.0.0/24` or `2001::/23` (outside Teredo and
    /// benchmarking).
    ProtocolAssignment,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32` or `3fff::/20`.
    Documentation,
    /// The deprecated 6to4 relay anycast, `192.88.99/24`.
    Relay6to4,
    /// `198.18/15` or `2001:2::/48`.
    Benchmarking,
    /// `224/4` or `ff00::/8`.
    Multicast,
    /// `240/4`, or IPv6 outside `2000::/3` with no other class.
    Reserved,
    /// `255.255.255.255`.
    Broadcast,
    /// The deprecated IPv4-compatible `::a.b.c.d` of a global IPv4 address.
    Ipv4Compatible,
    /// The SIIT IPv4-translated `::ffff:0:a.b.c.d` of a global IPv4 address.
    Ipv4Translated,
    /// Local-use NAT64, `64:ff9b:1::/48`.
    Nat64LocalUse,
    /// Discard-only, `100::/64`.
    Discard,
    /// Teredo, `2001::/32`.
    Teredo,
    /// 6to4, `2002::/16`.
    SixToFour,
    /// Unique local, `fc00::/7`.
    UniqueLocal,
    /// The deprecated site-local `fec0::/10`.
    SiteLocal,
    /// An address of one of this host's interfaces.
    HostOwn,
}

impl AddressClass {
    /// The class as a denial names it: "… resolves to 10.0.0.1, a *private* address".
    pub fn name(self) -> &'static str {
        match self {
            AddressClass::Unspecified => "unspecified",
            AddressClass::ThisNetwork => "this-network",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::CarrierGradeNat => "carrier-grade NAT",
            AddressClass::LinkLocal => "link-local",
            AddressClass::ProtocolAssignment => "IETF protocol assignment",
            AddressClass::Documentation => "documentation",
            AddressClass::Relay6to4 => "6to4 relay anycast",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::Multicast => "multicast",
            AddressClass::Reserved => "reserved",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Ipv4Compatible => "IPv4-compatible",
            AddressClass::Ipv4Translated => "IPv4-translated (SIIT)",
            AddressClass::Nat64LocalUse => "local-use NAT64",
            AddressClass::Discard => "discard-only",
            AddressClass::Teredo => "Teredo",
            AddressClass::SixToFour => "6to4",
            AddressClass::UniqueLocal => "unique local",
            AddressClass::SiteLocal => "site-local",
            AddressClass::HostOwn => "this host's own",
        }
    }
}

impl std::fmt::Display for AddressClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The class of an address that is not global unicast, or `None` for a global unicast
/// address (which may still be this host's own: only [`AddressPolicy`] knows those).
pub fn non_public_class(addr: IpAddr) -> Option<AddressClass> {
    match addr {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    }
}

/// The class of an IPv4 address that is not global unicast.
fn v4_class(ip: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass::*;
    let class = match ip.octets() {
        [0, 0, 0, 0] => Unspecified,
        [0, ..] => ThisNetwork,
        [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => Private,
        [100, 64..=127, ..] => CarrierGradeNat,
        [127, ..] => Loopback,
        [169, 254, ..] => LinkLocal,
        [192, 0, 0, _] => ProtocolAssignment,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Documentation,
        [192, 88, 99, _] => Relay6to4,
        [198, 18..=19, ..] => Benchmarking,
        [224..=239, ..] => Multicast,
        [255, 255, 255, 255] => Broadcast,
        [240..=255, ..] => Reserved,
        _ => return None,
    };
    Some(class)
}

/// The class of an IPv6 address that is not global unicast: anything outside `2000::/3`, and
/// the special ranges inside it.
fn v6_class(ip: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::*;
    // IPv4-mapped and NAT64 addresses reach the IPv4 address they embed.
    if let Some(v4) = embedded_v4(ip) {
        return v4_class(v4);
    }
    let class = match ip.segments() {
        [0, 0, 0, 0, 0, 0, 0, 0] => Unspecified,
        [0, 0, 0, 0, 0, 0, 0, 1] => Loopback,
        // IPv4-compatible and SIIT addresses are never global, whatever they embed.
        [0, 0, 0, 0, 0, 0, ..] => v4_class(last_32_bits(ip)).unwrap_or(Ipv4Compatible),
        [0, 0, 0, 0, 0xffff, 0, ..] => v4_class(last_32_bits(ip)).unwrap_or(Ipv4Translated),
        [0x64, 0xff9b, 1, ..] => Nat64LocalUse,
        [0x100, 0, 0, 0, ..] => Discard,
        [0x2001, 0, ..] => Teredo,
        [0x2001, 2, 0, ..] => Benchmarking,
        [0x2001, 0..=0x1ff, ..] => ProtocolAssignment,
        [0x2001, 0xdb8, ..] | [0x3fff, 0..=0xfff, ..] => Documentation,
        [0x2002, ..] => SixToFour,
        [0x2000..=0x3fff, ..] => return None,
        [0xfc00..=0xfdff, ..] => UniqueLocal,
        [0xfe80..=0xfebf, ..] => LinkLocal,
        [0xfec0..=0xfeff, ..] => SiteLocal,
        [0xff00..=0xffff, ..] => Multicast,
        _ => Reserved,
    };
    Some(class)
}

#[cfg(test)]
mod tests;
