//! Who the client is: the peer address, or — only when the peer is a trusted proxy — the address
//! the proxies report.
//!
//! Proxy headers are the client's own words unless a proxy we trust wrote them, so they count only
//! when the peer is in `trusted_proxies` (like uvicorn's `forwarded_allow_ips`, default none).
//! Then the chain is walked from the right (the hop nearest to us) to the left, skipping trusted
//! proxies, and the first address that is not a trusted proxy is the client. A hop that does not
//! parse as an address ends the walk at the last trusted hop: a client cannot pick its key by
//! writing garbage. At most [`MAX_HOPS`] hops are read, however long the header.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr};

/// Hops read from the right of a forwarding header.
pub const MAX_HOPS: usize = 32;

/// Trusted proxy networks.
///
/// ```
/// use seawall::http::client_ip::Proxies;
///
/// let proxies = Proxies::parse(&["10.0.0.0/8", "::1"]).unwrap();
/// assert!(proxies.contains("10.1.2.3".parse().unwrap()));
/// assert!(!proxies.contains("192.0.2.1".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    nets: Vec<IpNet>,
}

/// Parses an address or a CIDR network.
pub fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

impl Proxies {
    /// Networks from addresses and CIDRs; the first bad one is returned as the error.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        let nets = items
            .iter()
            .map(|s| parse_net(s.as_ref()).ok_or_else(|| s.as_ref().to_string()))
            .collect::<Result<_, _>>()?;
        Ok(Proxies { nets })
    }

    /// Whether `ip` is in any of the networks (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Whether no network is configured.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// One hop of `X-Forwarded-For` or of a `Forwarded` `for=` parameter, as an address: strips
/// quotes, brackets and ports (`"[2001:db8::1]:4711"`, `192.0.2.1:80`).
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end].parse::<IpAddr>().ok().map(canonical);
    }
    let (host, port) = text.rsplit_once(':')?;
    if port.bytes().all(|b| b.is_ascii_digit()) {
        return host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4);
    }
    None
}

/// The `for=` values of a `Forwarded` header (RFC 7239), left to right.
fn forwarded_for(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').filter_map(|element| {
        element.split(|&b| b == b';').find_map(|pair| {
            let pair = pair.trim_ascii();
            let (name, val) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
            name.eq_ignore_ascii_case(b"for").then_some(&val[1..])
        })
    })
}

/// The client address: `peer` itself unless it is a trusted proxy, in which case the proxy
/// headers (`Forwarded`, else `X-Forwarded-For`, else `X-Real-IP`, each possibly repeated) are
/// walked from the right. `headers` are (lower-case name, value) pairs as ASGI gives them.
///
/// ```
/// use seawall::http::client_ip::{client_ip, Proxies};
///
/// let proxies = Proxies::parse(&["10.0.0.0/8"]).unwrap();
/// let headers: &[(&[u8], &[u8])] = &[(b"x-forwarded-for", b"6.6.6.6, 203.0.113.7, 10.0.0.2")];
/// // From a trusted proxy: the right-most address that is not a proxy.
/// assert_eq!(client_ip(Some("10.0.0.1".parse().unwrap()), headers, &proxies).unwrap().to_string(), "203.0.113.7");
/// // From anyone else the header is ignored.
/// assert_eq!(client_ip(Some("198.51.100.9".parse().unwrap()), headers, &proxies).unwrap().to_string(), "198.51.100.9");
/// ```
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &[(&[u8], &[u8])],
    proxies: &Proxies,
) -> Option<IpAddr> {
    let peer = canonical(peer?);
    if proxies.is_empty() || !proxies.contains(peer) {
        return Some(peer);
    }
    let values = |name: &[u8]| -> Vec<&[u8]> {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .collect()
    };
    let mut hops: Vec<&[u8]> = Vec::new();
    let forwarded = values(b"forwarded");
    if !forwarded.is_empty() {
        for v in forwarded {
            hops.extend(forwarded_for(v));
        }
    } else {
        let xff = values(b"x-forwarded-for");
        if !xff.is_empty() {
            for v in xff {
                hops.extend(v.split(|&b| b == b','));
            }
        } else {
            hops.extend(values(b"x-real-ip"));
        }
    }
    let mut client = peer;
    for hop in hops.iter().rev().take(MAX_HOPS) {
        match parse_hop(hop) {
            Some(ip) if proxies.contains(ip) => client = ip,
            Some(ip) => return Some(ip),
            None => return Some(client),
        }
    }
    Some(client)
}

/// The key part for an address: IPv4 as is, IPv6 as its `/prefix` network.
///
/// ```
/// use seawall::http::client_ip::group;
///
/// assert_eq!(group("2001:db8:1:2:3:4:5:6".parse().unwrap(), 64), "2001:db8:1:2::/64");
/// assert_eq!(group("192.0.2.1".parse().unwrap(), 64), "192.0.2.1");
/// ```
pub fn group(ip: IpAddr, ipv6_prefix: u8) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) if ipv6_prefix >= 128 => v6.to_string(),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = if ipv6_prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(ipv6_prefix))
            };
            format!("{}/{}", Ipv6Addr::from(bits & mask), ipv6_prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn untrusted_peers_cannot_choose_their_key() {
        let proxies = Proxies::parse(&["10.0.0.0/8"]).unwrap();
        for headers in [
            vec![(&b"x-forwarded-for"[..], &b"1.2.3.4"[..])],
            vec![(&b"forwarded"[..], &b"for=1.2.3.4"[..])],
            vec![(&b"x-real-ip"[..], &b"1.2.3.4"[..])],
        ] {
            assert_eq!(
                client_ip(ip("198.51.100.9"), &headers, &proxies),
                ip("198.51.100.9")
            );
        }
        // With no proxies configured, even a loopback peer's headers are ignored.
        let none = Proxies::default();
        let h = [(&b"x-forwarded-for"[..], &b"1.2.3.4"[..])];
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &none), ip("127.0.0.1"));
    }

    #[test]
    fn trusted_chains_are_walked_from_the_right() {
        let proxies = Proxies::parse(&["10.0.0.0/8", "2001:db8::/32"]).unwrap();
        let h = [(
            &b"forwarded"[..],
            &br#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, For=203.0.113.9"#[..],
        )];
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &proxies), ip("203.0.113.9"));
        let h = [
            (&b"x-forwarded-for"[..], &b"6.6.6.6"[..]),
            (&b"x-forwarded-for"[..], &b"203.0.113.5:8080, 10.0.0.3"[..]),
        ];
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &proxies), ip("203.0.113.5"));
        let h = [(&b"x-real-ip"[..], &b" 2001:db9::1 "[..])];
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &proxies), ip("2001:db9::1"));
    }

    #[test]
    fn garbage_ends_the_walk_at_the_last_trusted_hop() {
        let proxies = Proxies::parse(&["10.0.0.0/8"]).unwrap();
        for value in [
            &b"203.0.113.1, not-an-ip, 10.0.0.7"[..],
            b"\xff\xfe, 10.0.0.7",
            b"1.2.3.4, , 10.0.0.7",
        ] {
            let h = [(&b"x-forwarded-for"[..], value)];
            assert_eq!(client_ip(ip("10.0.0.1"), &h, &proxies), ip("10.0.0.7"));
        }
        let long = "1.1.1.1,".repeat(2_000) + "10.0.0.2";
        let h = [(&b"x-forwarded-for"[..], long.as_bytes())];
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &proxies), ip("1.1.1.1"));
        let all_proxies = "10.0.0.9,".repeat(100) + "10.0.0.2";
        let h = [(&b"x-forwarded-for"[..], all_proxies.as_bytes())];
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &proxies), ip("10.0.0.9"));
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let proxies = Proxies::parse(&["10.0.0.0/8"]).unwrap();
        assert!(proxies.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert_eq!(group("::ffff:192.0.2.1".parse().unwrap(), 64), "::/64");
        assert_eq!(
            client_ip(ip("::ffff:192.0.2.1"), &[], &proxies),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn bad_networks_are_reported() {
        assert_eq!(Proxies::parse(&["10.0.0.0/8", "nope"]).unwrap_err(), "nope");
        assert!(Proxies::parse(&["10.0.0.0/33"]).is_err());
    }
}
