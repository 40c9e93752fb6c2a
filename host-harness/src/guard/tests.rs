//! The outbound guard: which addresses and origins the sandbox may reach.

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
fn only_global_unicast_passes() {
    use AddressClass::*;
    for (addr, class) in [
        // IPv4
        ("0.0.0.0", Unspecified),
        ("0.1.2.3", ThisNetwork),
        ("10.1.2.3", Private),
        ("172.16.0.1", Private),
        ("172.31.255.255", Private),
        ("192.168.1.1", Private),
        ("100.64.0.1", CarrierGradeNat),
        ("100.127.255.254", CarrierGradeNat),
        ("127.0.0.1", Loopback),
        ("127.255.0.1", Loopback),
        ("169.254.169.254", LinkLocal),
        ("192.0.0.1", ProtocolAssignment),
        ("192.0.0.9", ProtocolAssignment),
        ("192.0.2.1", Documentation),
        ("198.51.100.1", Documentation),
        ("203.0.113.1", Documentation),
        ("192.88.99.1", Relay6to4),
        ("198.18.0.1", Benchmarking),
        ("198.19.255.1", Benchmarking),
        ("224.0.0.1", Multicast),
        ("239.255.255.250", Multicast),
        ("240.0.0.1", Reserved),
        ("255.255.255.254", Reserved),
        ("255.255.255.255", Broadcast),
        // IPv6
        ("::", Unspecified),
        ("::1", Loopback),
        ("::ffff:127.0.0.1", Loopback),
        ("::ffff:169.254.169.254", LinkLocal),
        ("::ffff:10.0.0.1", Private),
        ("::10.0.0.1", Private),
        ("::8.8.8.8", Ipv4Compatible),
        ("::ffff:0:7f00:1", Loopback),
        ("::ffff:0:a9fe:a9fe", LinkLocal),
        ("::ffff:0:8.8.8.8", Ipv4Translated),
        ("64:ff9b::10.0.0.1", Private),
        ("64:ff9b::7f00:1", Loopback),
        ("64:ff9b:1::a00:1", Nat64LocalUse),
        ("64:ff9b:1::808:808", Nat64LocalUse),
        ("64:ff9b:0:1::808:808", Reserved),
        ("100::1", Discard),
        ("100:0:0:1::1", Reserved),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Teredo),
        ("2001:2::1", Benchmarking),
        ("2001:1::1", ProtocolAssignment),
        ("2001:4:112::1", ProtocolAssignment),
        ("2001:20::1", ProtocolAssignment),
        ("2001:1ff:ffff::1", ProtocolAssignment),
        ("2001:db8::1", Documentation),
        ("3fff::1", Documentation),
        ("3fff:fff:ffff::1", Documentation),
        ("2002:7f00:1::1", SixToFour),
        ("2002:a00:1::1", SixToFour),
        ("2002:0808:0808::1", SixToFour),
        ("5f00::1", Reserved),
        ("1000::1", Reserved),
        ("4000::1", Reserved),
        ("fc00::1", UniqueLocal),
        ("fd00::1", UniqueLocal),
        ("fe80::1", LinkLocal),
        ("febf::1", LinkLocal),
        ("fec0::1", SiteLocal),
        ("ff02::1", Multicast),
        ("ff0e::1", Multicast),
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
        "1.1.1.1",
        "1.0.0.1",
        "9.255.255.255",
        "11.0.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "126.255.255.255",
        "128.0.0.1",
        "169.253.255.255",
        "172.15.255.255",
        "172.32.0.1",
        "192.0.1.1",
        "192.0.3.1",
        "192.167.255.255",
        "192.169.0.1",
        "198.17.255.255",
        "198.20.0.1",
        "223.255.255.255",
        "2606:4700::1111",
        "2a00:1450:4001::1",
        "2001:200::1",
        "2001:db7::1",
        "2003::1",
        "2000::1",
        "3ffe::1",
        "3fff:1000::1",
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
    ] {
        assert_eq!(non_public_class(public.parse().unwrap()), None, "{public}");
    }
}

#[test]
fn classes_have_names() {
    assert_eq!(AddressClass::Private.to_string(), "private");
    assert_eq!(AddressClass::HostOwn.name(), "this host's own");
    let denial = Denial::PrivateAddress {
        host: "crm".into(),
        addr: "2002:a00:1::1".parse().unwrap(),
        class: AddressClass::SixToFour,
    };
    assert_eq!(
        denial.to_string(),
        "crm resolves to 2002:a00:1::1, a 6to4 address; pass --allow-private-network to \
         allow it"
    );
}

#[test]
fn private_addresses_are_refused_unless_allowed() {
    let strict = AddressPolicy::new(false);
    assert!(!strict.allow_private_network());
    for refused in ["127.0.0.1", "10.0.0.1", "2002:a00:1::1", "::ffff:0:7f00:1"] {
        let err = strict
            .check_addr("crm", refused.parse().unwrap())
            .unwrap_err();
        assert!(
            matches!(err, Denial::PrivateAddress { .. }),
            "{refused}: {err}"
        );
        assert!(err.to_string().contains("--allow-private-network"), "{err}");
    }
    strict
        .check_addr("crm", "8.8.8.8".parse().unwrap())
        .unwrap();
    let open = AddressPolicy::new(true);
    assert!(open.allow_private_network());
    open.check_addr("crm", "127.0.0.1".parse().unwrap())
        .unwrap();
    open.check_addr("crm", "2002:a00:1::1".parse().unwrap())
        .unwrap();
}

#[test]
fn this_hosts_own_addresses_are_refused_unless_allowed() {
    // A non-loopback address of this host if it has one (a global one is refused as this
    // host's own, a private one for its class), else loopback.
    let own = read_host_addresses()
        .unwrap_or_default()
        .into_iter()
        .find(|ip| !ip.is_loopback())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let err = AddressPolicy::new(false)
        .check_addr("crm", own)
        .unwrap_err();
    let Denial::PrivateAddress { class, .. } = err else {
        panic!("{own}: {err}");
    };
    if non_public_class(own).is_none() {
        assert_eq!(class, AddressClass::HostOwn, "{own}");
    }
    AddressPolicy::new(true).check_addr("crm", own).unwrap();
}

fn global_host() -> std::io::Result<Vec<IpAddr>> {
    Ok(vec![
        "127.0.0.1".parse().unwrap(),
        "8.8.4.4".parse().unwrap(),
        "2606:4700::1001".parse().unwrap(),
    ])
}

#[test]
fn a_global_address_of_this_host_is_its_own() {
    let strict = AddressPolicy::with_reader(false, global_host, HOST_ADDRESSES_TTL);
    for own in [
        "8.8.4.4",
        "2606:4700::1001",
        "::ffff:8.8.4.4",
        "64:ff9b::8.8.4.4",
    ] {
        let err = strict.check_addr("crm", own.parse().unwrap()).unwrap_err();
        assert!(
            matches!(
                err,
                Denial::PrivateAddress {
                    class: AddressClass::HostOwn,
                    ..
                }
            ),
            "{own}: {err}"
        );
        assert!(err.to_string().contains("this host's own"), "{err}");
    }
    for other in ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
        strict.check_addr("crm", other.parse().unwrap()).unwrap();
    }
    // Loopback keeps its own class.
    let err = strict
        .check_addr("crm", "127.0.0.1".parse().unwrap())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Denial::PrivateAddress {
                class: AddressClass::Loopback,
                ..
            }
        ),
        "{err}"
    );
    let open = AddressPolicy::with_reader(true, global_host, HOST_ADDRESSES_TTL);
    open.check_addr("crm", "8.8.4.4".parse().unwrap()).unwrap();
}

#[test]
fn unreadable_interfaces_leave_the_classes() {
    fn broken() -> std::io::Result<Vec<IpAddr>> {
        Err(std::io::Error::other("no netlink here"))
    }
    let strict = AddressPolicy::with_reader(false, broken, Duration::ZERO);
    strict
        .check_addr("crm", "8.8.8.8".parse().unwrap())
        .unwrap();
    strict
        .check_addr("crm", "127.0.0.1".parse().unwrap())
        .unwrap_err();
}

#[test]
fn the_hosts_addresses_are_read_once_per_ttl() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static READS: AtomicUsize = AtomicUsize::new(0);
    fn counted() -> std::io::Result<Vec<IpAddr>> {
        READS.fetch_add(1, Ordering::SeqCst);
        Ok(vec!["8.8.4.4".parse().unwrap()])
    }
    let strict = AddressPolicy::with_reader(false, counted, Duration::from_secs(3600));
    assert_eq!(READS.load(Ordering::SeqCst), 1);
    for _ in 0..3 {
        strict
            .check_addr("crm", "8.8.4.4".parse().unwrap())
            .unwrap_err();
        strict
            .clone()
            .check_addr("crm", "1.0.0.1".parse().unwrap())
            .unwrap();
    }
    assert_eq!(READS.load(Ordering::SeqCst), 1, "read again before the TTL");
    AddressPolicy::with_reader(true, counted, Duration::ZERO)
        .check_addr("crm", "8.8.4.4".parse().unwrap())
        .unwrap();
    assert_eq!(
        READS.load(Ordering::SeqCst),
        1,
        "read with private networks allowed"
    );
}

#[test]
fn stale_addresses_are_read_again_and_kept_when_unreadable() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static READS: AtomicUsize = AtomicUsize::new(0);
    fn changing() -> std::io::Result<Vec<IpAddr>> {
        match READS.fetch_add(1, Ordering::SeqCst) {
            0 => Ok(vec!["8.8.4.4".parse().unwrap()]),
            1 => Ok(vec!["1.0.0.1".parse().unwrap()]),
            _ => Err(std::io::Error::other("gone")),
        }
    }
    // With a TTL of zero, every check reads the addresses again.
    let strict = AddressPolicy::with_reader(false, changing, Duration::ZERO);
    // The second read replaced 8.8.4.4 by 1.0.0.1.
    strict
        .check_addr("crm", "8.8.4.4".parse().unwrap())
        .unwrap();
    // The third read failed and kept 1.0.0.1.
    strict
        .check_addr("crm", "1.0.0.1".parse().unwrap())
        .unwrap_err();
    assert_eq!(READS.load(Ordering::SeqCst), 3);
}
