//! Addresses a plugin's HTTP request may not reach unless a grant names them
//! literally: link-local, cloud metadata, unspecified, multicast and
//! broadcast.
//!
//! A grant names an origin, and the origin's name resolves to addresses the
//! operator never wrote down. The classic escalation is a name (or a DNS
//! answer an attacker controls) that points at 169.254.169.254, the cloud
//! metadata service that hands out the machine's own credentials. So every
//! address a request could connect to passes [`forbidden_address`]: the
//! resolver of the shared client refuses a name if any of its addresses is
//! forbidden, and [`super::Grants::check_http`] refuses a forbidden address
//! written literally in a URL unless a grant names that very address.
//!
//! Private ranges (10/8, 192.168/16, …) and loopback are not refused: the
//! services rotator manages (a broker, an internal API) live there.
//! IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`, the
//! deprecated compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` and 6to4
//! `2002:aabb:ccdd::`) are judged by the IPv4 address they carry, so
//! `[::ffff:169.254.169.254]` is the metadata address too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Cloud metadata services (AWS, GCP, Azure, …; Alibaba; AWS over IPv6).
const METADATA_V4: [Ipv4Addr; 2] = [Ipv4Addr::new(169, 254, 169, 254), Ipv4Addr::new(100, 100, 100, 200)];
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// Why `ip` may not be connected to unless a grant names it literally, or
/// `None` if it may.
pub fn forbidden_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if METADATA_V4.contains(&ip) {
        Some("a cloud metadata address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.octets()[0] == 0 {
        // 0.0.0.0 connects to the host itself on Linux; the rest of 0/8 is
        // "this network" and never a server's address.
        Some("an unspecified (0.0.0.0/8) address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_broadcast() {
        Some("the broadcast address")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return forbidden_v4(v4);
    }
    if ip == METADATA_V6 {
        Some("a cloud metadata address")
    } else if ip.is_unspecified() {
        Some("the unspecified address (::)")
    } else if ip.is_unicast_link_local() {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

/// The IPv4 address an IPv6 address stands for, where it stands for one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d, mapped.
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        // ::a.b.c.d, compatible (deprecated), but not :: and ::1 themselves.
        [0, 0, 0, 0, 0, 0, _, _] if !ip.is_unspecified() && !ip.is_loopback() => Some(low),
        // 64:ff9b::a.b.c.d, the NAT64 well-known prefix.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        // 2002:aabb:ccdd::/48, 6to4.
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(text: &str) -> bool {
        forbidden_address(text.parse().unwrap()).is_some()
    }

    #[test]
    fn metadata_link_local_unspecified_multicast_and_broadcast_are_forbidden() {
        for ip in [
            "169.254.169.254",
            "100.100.100.200",
            "169.254.0.1",
            "169.254.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "fd00:ec2::254",
            "::",
            "fe80::1",
            "febf:ffff::1",
            "ff02::1",
            "ff05::1:3",
        ] {
            assert!(forbidden(ip), "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_of_a_forbidden_ipv4_address_are_forbidden() {
        for ip in [
            "::ffff:169.254.169.254",
            "::ffff:a9fe:a9fe",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(forbidden(ip), "{ip}");
            assert_eq!(forbidden_address(ip.parse().unwrap()), Some("a cloud metadata address"), "{ip}");
        }
        assert!(forbidden("::ffff:0.0.0.0"));
        assert!(!forbidden("::ffff:127.0.0.1"), "mapped loopback is loopback");
    }

    #[test]
    fn loopback_private_and_public_addresses_are_allowed() {
        for ip in [
            "127.0.0.1",
            "10.0.0.5",
            "172.16.3.4",
            "192.168.1.10",
            "100.64.0.1",
            "100.100.100.201",
            "169.253.255.255",
            "169.255.0.0",
            "1.1.1.1",
            "223.255.255.255",
            "::1",
            "fd00::1",
            "fd00:ec2::253",
            "fec0::1",
            "2001:db8::1",
        ] {
            assert!(!forbidden(ip), "{ip}");
        }
    }
}
