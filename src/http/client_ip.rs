//! Who the client is: the peer address, or — only when the peer is a trusted proxy — the address
//! the proxies report in the one header they are configured to write.
//!
//! Proxy headers are the client's own words unless a proxy we trust wrote them, so they count only
//! when the peer is in `trusted_proxies` (like uvicorn's `forwarded_allow_ips`, default none).
//! Only one header is ever read, [`ProxyHeader`] (default `X-Forwarded-For`): common proxies
//! (nginx's `$proxy_add_x_forwarded_for`, AWS ALB, Caddy) write that one and pass every other
//! header through from the client, so reading "the first present" let a client choose its key
//! with a `Forwarded` or `X-Real-IP` of its own. The chain is walked from the right (the hop
//! nearest to us) to the left, skipping trusted proxies, and the first address that is not a
//! trusted proxy is the client. A hop that is not an address (garbage, `unknown`, an obfuscated
//! identifier) ends the walk at the last trusted hop: a client cannot pick its key by writing
//! garbage. At most [`MAX_HOPS`] hops are read, however long the header.

use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Hops read from the right of a forwarding header.
pub const MAX_HOPS: usize = 32;

/// The one header a trusted proxy reports the client in.
///
/// ```
/// use seawall::http::client_ip::ProxyHeader;
///
/// assert_eq!(ProxyHeader::parse("Forwarded").unwrap(), ProxyHeader::Forwarded);
/// assert_eq!(ProxyHeader::parse("X-Real-IP").unwrap(), ProxyHeader::List(b"x-real-ip".to_vec()));
/// assert!(ProxyHeader::parse("X Real IP").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyHeader {
    /// RFC 7239 `Forwarded`: the `for=` parameter of each element.
    Forwarded,
    /// `X-Forwarded-For`, `X-Real-IP` or any other header (lower-case name) holding one address
    /// or a comma-separated list of them.
    List(Vec<u8>),
}

impl Default for ProxyHeader {
    fn default() -> Self {
        ProxyHeader::List(b"x-forwarded-for".to_vec())
    }
}

/// An RFC 9110 token character (header names, `Forwarded` parameter names and plain values).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl ProxyHeader {
    /// A header name (any case); the error says what is wrong with it.
    pub fn parse(name: &str) -> Result<Self, String> {
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(format!(
                "must be a header name such as 'X-Forwarded-For', 'Forwarded' or 'X-Real-IP', \
                 got {name:?}"
            ));
        }
        let lower = name.to_ascii_lowercase().into_bytes();
        Ok(if lower == b"forwarded" {
            ProxyHeader::Forwarded
        } else {
            ProxyHeader::List(lower)
        })
    }

    /// The lower-case header name.
    pub fn name(&self) -> &[u8] {
        match self {
            ProxyHeader::Forwarded => b"forwarded",
            ProxyHeader::List(name) => name,
        }
    }
}

/// Trusted proxy networks.
///
/// IPv4-mapped IPv6 networks (`::ffff:10.0.0.0/104`) are taken as the IPv4 networks they map
/// (`10.0.0.0/8`), because peers are compared as IPv4 whichever way the server reports them.
/// Wider IPv6 networks (`::/0`) stay IPv6 only: trusting or exempting every IPv4 address is
/// never implied.
///
/// ```
/// use seawall::http::client_ip::Proxies;
///
/// let proxies = Proxies::parse(&["10.0.0.0/8", "::1", "::ffff:192.0.2.0/120"]).unwrap();
/// assert!(proxies.contains("10.1.2.3".parse().unwrap()));
/// assert!(proxies.contains("192.0.2.9".parse().unwrap()));
/// assert!(!proxies.contains("192.0.3.1".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    nets: Vec<IpNet>,
}

/// Parses an address or a CIDR network; an IPv4-mapped one becomes the IPv4 network it maps.
pub fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
        .map(unmap)
}

fn unmap(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if v6.prefix_len() >= 96 {
            if let Some(v4) = v6.addr().to_ipv4_mapped() {
                if let Ok(v4) = Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(v4);
                }
            }
        }
    }
    net
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

/// One hop of `X-Forwarded-For` (or another list header) as an address: strips whitespace,
/// quotes, brackets and ports (`"[2001:db8::1]:4711"`, `192.0.2.1:80`).
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?.trim().trim_matches('"');
    node(text)
}

/// An RFC 7239 node as an address: `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711` (a bare IPv6 address is accepted too). `unknown`, obfuscated
/// identifiers (`_hidden`) and anything else are not addresses.
fn node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    let valid_port = |port: &str| {
        !port.is_empty()
            && (port.bytes().all(|b| b.is_ascii_digit())
                || (port.starts_with('_')
                    && port
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))))
    };
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(valid_port)) {
            return None;
        }
        return inside
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6)
            .map(canonical);
    }
    let (host, port) = text.rsplit_once(':')?;
    if valid_port(port) {
        return host.parse::<Ipv4Addr>().ok().map(IpAddr::V4);
    }
    None
}

/// The `for=` nodes of a `Forwarded` value (RFC 7239 §4), left to right, appended to `out`: one
/// per element, `None` where an element names no address (no `for`, `unknown`, obfuscated, a
/// repeated `for`). Commas and semicolons inside quoted strings are not separators, and
/// backslash escapes are undone. Where the value stops parsing, one `None` stands for the rest.
fn forwarded_nodes(value: &[u8], out: &mut Vec<Option<IpAddr>>) {
    let n = value.len();
    let mut i = 0;
    let skip_ows = |i: &mut usize| {
        while *i < n && (value[*i] == b' ' || value[*i] == b'\t') {
            *i += 1;
        }
    };
    let mut quoted = Vec::new();
    loop {
        // One element: pairs separated by ';', up to ',' or the end.
        let mut pairs = 0;
        let mut found: Option<Option<IpAddr>> = None;
        let mut repeated = false;
        loop {
            skip_ows(&mut i);
            if i < n && value[i] == b';' {
                i += 1;
                continue;
            }
            if i >= n || value[i] == b',' {
                break;
            }
            let start = i;
            while i < n && is_tchar(value[i]) {
                i += 1;
            }
            if i == start || i >= n || value[i] != b'=' {
                out.push(None);
                return;
            }
            let name = &value[start..i];
            i += 1;
            let text: &[u8] = if i < n && value[i] == b'"' {
                i += 1;
                quoted.clear();
                loop {
                    match value.get(i) {
                        None => {
                            out.push(None);
                            return;
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => match value.get(i + 1) {
                            Some(&b) => {
                                quoted.push(b);
                                i += 2;
                            }
                            None => {
                                out.push(None);
                                return;
                            }
                        },
                        Some(&b) => {
                            quoted.push(b);
                            i += 1;
                        }
                    }
                }
                &quoted
            } else {
                let start = i;
                while i < n && is_tchar(value[i]) {
                    i += 1;
                }
                if i == start {
                    out.push(None);
                    return;
                }
                &value[start..i]
            };
            pairs += 1;
            if name.eq_ignore_ascii_case(b"for") {
                repeated |= found.is_some();
                found = Some(std::str::from_utf8(text).ok().and_then(node));
            }
            skip_ows(&mut i);
            if i < n && value[i] != b';' && value[i] != b',' {
                out.push(None);
                return;
            }
        }
        if pairs > 0 {
            out.push(if repeated { None } else { found.flatten() });
        }
        if i >= n {
            return;
        }
        i += 1; // the ','
    }
}

/// The walk from the right: trusted hops are skipped, the first other address is the client.
struct Walk<'a> {
    proxies: &'a Proxies,
    client: IpAddr,
    hops: usize,
}

impl Walk<'_> {
    /// One hop, right to left; `Some(client)` once the walk is over.
    fn step(&mut self, hop: Option<IpAddr>) -> Option<IpAddr> {
        if self.hops == MAX_HOPS {
            return Some(self.client);
        }
        self.hops += 1;
        match hop {
            Some(ip) if self.proxies.contains(ip) => {
                self.client = ip;
                None
            }
            Some(ip) => Some(ip),
            None => Some(self.client),
        }
    }
}

/// The client address: `peer` itself unless it is a trusted proxy, in which case `header` alone
/// (possibly repeated: its lines are one list, in order) is walked from the right. `headers` are
/// (lower-case name, value) pairs as ASGI gives them.
///
/// ```
/// use seawall::http::client_ip::{client_ip, Proxies, ProxyHeader};
///
/// let proxies = Proxies::parse(&["10.0.0.0/8"]).unwrap();
/// let xff = ProxyHeader::default();
/// let headers: &[(&[u8], &[u8])] = &[
///     (b"forwarded", b"for=6.6.6.6"), // the client's own, passed through: never read
///     (b"x-forwarded-for", b"6.6.6.6, 203.0.113.7, 10.0.0.2"),
/// ];
/// // From a trusted proxy: the right-most address that is not a proxy.
/// assert_eq!(client_ip(Some("10.0.0.1".parse().unwrap()), headers, &proxies, &xff).unwrap().to_string(), "203.0.113.7");
/// // From anyone else the header is ignored.
/// assert_eq!(client_ip(Some("198.51.100.9".parse().unwrap()), headers, &proxies, &xff).unwrap().to_string(), "198.51.100.9");
/// ```
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &[(&[u8], &[u8])],
    proxies: &Proxies,
    header: &ProxyHeader,
) -> Option<IpAddr> {
    let peer = canonical(peer?);
    if proxies.is_empty() || !proxies.contains(peer) {
        return Some(peer);
    }
    let name = header.name();
    let mut walk = Walk {
        proxies,
        client: peer,
        hops: 0,
    };
    let mut nodes = Vec::new();
    for (_, value) in headers
        .iter()
        .rev()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        match header {
            ProxyHeader::List(_) => {
                for hop in value.rsplit(|&b| b == b',') {
                    if let Some(ip) = walk.step(parse_hop(hop)) {
                        return Some(ip);
                    }
                }
            }
            ProxyHeader::Forwarded => {
                nodes.clear();
                forwarded_nodes(value, &mut nodes);
                for &hop in nodes.iter().rev() {
                    if let Some(ip) = walk.step(hop) {
                        return Some(ip);
                    }
                }
            }
        }
    }
    Some(walk.client)
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
    let mut text: super::key_text::KeyText = super::key_text::KeyText::new();
    text.push_group(ip, ipv6_prefix);
    text.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn header(name: &str) -> ProxyHeader {
        ProxyHeader::parse(name).unwrap()
    }

    /// The client behind trusted proxy 10.0.0.1 (proxies 10/8, 2001:db8::/32), reading `name`.
    fn via(name: &str, h: &[(&[u8], &[u8])]) -> Option<IpAddr> {
        let proxies = Proxies::parse(&["10.0.0.0/8", "2001:db8::/32"]).unwrap();
        client_ip(ip("10.0.0.1"), h, &proxies, &header(name))
    }

    #[test]
    fn untrusted_peers_cannot_choose_their_key() {
        let proxies = Proxies::parse(&["10.0.0.0/8"]).unwrap();
        for (name, value) in [
            ("x-forwarded-for", &b"1.2.3.4"[..]),
            ("forwarded", b"for=1.2.3.4"),
            ("x-real-ip", b"1.2.3.4"),
        ] {
            let h = [(name.as_bytes(), value)];
            assert_eq!(
                client_ip(ip("198.51.100.9"), &h, &proxies, &header(name)),
                ip("198.51.100.9")
            );
        }
        // With no proxies configured, even a loopback peer's headers are ignored.
        let none = Proxies::default();
        let h = [(&b"x-forwarded-for"[..], &b"1.2.3.4"[..])];
        let xff = ProxyHeader::default();
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &none, &xff), ip("127.0.0.1"));
    }

    #[test]
    fn trusted_chains_are_walked_from_the_right() {
        let h = [(
            &b"forwarded"[..],
            &br#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, For=203.0.113.9"#[..],
        )];
        assert_eq!(via("Forwarded", &h), ip("203.0.113.9"));
        let h = [
            (&b"x-forwarded-for"[..], &b"6.6.6.6"[..]),
            (&b"x-forwarded-for"[..], &b"203.0.113.5:8080, 10.0.0.3"[..]),
        ];
        assert_eq!(via("X-Forwarded-For", &h), ip("203.0.113.5"));
        let h = [(&b"x-real-ip"[..], &b" 2001:db9::1 "[..])];
        assert_eq!(via("X-Real-IP", &h), ip("2001:db9::1"));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let h = [
            (&b"forwarded"[..], &b"for=6.6.6.1"[..]),
            (&b"x-real-ip"[..], &b"6.6.6.2"[..]),
            (&b"x-forwarded-for"[..], &b"203.0.113.7"[..]),
            (&b"cf-connecting-ip"[..], &b"203.0.113.8"[..]),
        ];
        assert_eq!(via("x-forwarded-for", &h), ip("203.0.113.7"));
        assert_eq!(via("Forwarded", &h), ip("6.6.6.1"));
        assert_eq!(via("X-Real-IP", &h), ip("6.6.6.2"));
        assert_eq!(via("CF-Connecting-IP", &h), ip("203.0.113.8"));
        assert_eq!(via("True-Client-IP", &h), ip("10.0.0.1"));
    }

    #[test]
    fn header_names_are_tokens() {
        for bad in [
            "",
            " ",
            "X Forwarded",
            "x-forwarded-for:",
            "caf\u{e9}",
            "a,b",
            "(x)",
        ] {
            assert!(ProxyHeader::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(header(" FORWARDED "), ProxyHeader::Forwarded);
        assert_eq!(header("X-Forwarded-For"), ProxyHeader::default());
    }

    #[test]
    fn forwarded_follows_rfc_7239() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (
                br#"for=203.0.113.7;host="a,for=9.9.9.9""#,
                Some("203.0.113.7"),
            ),
            (
                br#"for=203.0.113.7;host="a;for=9.9.9.9""#,
                Some("203.0.113.7"),
            ),
            (
                br#"for=203.0.113.7;host="a\",for=9.9.9.9""#,
                Some("203.0.113.7"),
            ),
            (
                br#"host="x,for=9.9.9.9", for=203.0.113.7"#,
                Some("203.0.113.7"),
            ),
            (
                br#"for="[2001:db9:cafe::17]:4711""#,
                Some("2001:db9:cafe::17"),
            ),
            (br#"for="[2001:db9::1]""#, Some("2001:db9::1")),
            (br#"for="203.0.113.7:8080""#, Some("203.0.113.7")),
            (br#"for="203.0.113.7:_port""#, Some("203.0.113.7")),
            (br#"for="\2\0\3.0.113.7""#, Some("203.0.113.7")),
            (b"FOR=203.0.113.7;Proto=https", Some("203.0.113.7")),
            (b"for=203.0.113.7 ; proto=https ,", Some("203.0.113.7")),
            (b"for=198.51.100.1, , for=10.0.0.9", Some("198.51.100.1")),
            (b";;for=198.51.100.1;;", Some("198.51.100.1")),
            // Not addresses: the walk ends at the last trusted hop (the peer here).
            (b"for=unknown", None),
            (br#"for="_hidden""#, None),
            (b"for=_hidden", None),
            (b"for=198.51.100.1, for=unknown", None),
            (b"for=198.51.100.1, proto=https", None),
            (b"for=198.51.100.1;for=198.51.100.2", None),
            (br#"for="203.0.113.7"#, None),
            (br#"for="203.0.113.7\"#, None),
            (br#"for=9.9.9.9, for=203.0.113.7;host="unterminated"#, None),
            (b"for=2001:db9::1", None),
            (b"for=203.0.113.7:80", None),
            (br#"for="[203.0.113.7]""#, None),
            (br#"for="[2001:db9::1]:""#, None),
            (b"for=", None),
            (b"=203.0.113.7", None),
            (b"for=203.0.113.7 x", None),
            (b"\xff\xfe", None),
        ];
        for (value, want) in cases {
            let h = [(&b"forwarded"[..], *value)];
            let want = want.map_or(ip("10.0.0.1"), ip);
            assert_eq!(
                via("Forwarded", &h),
                want,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn garbage_ends_the_walk_at_the_last_trusted_hop() {
        for value in [
            &b"203.0.113.1, not-an-ip, 10.0.0.7"[..],
            b"\xff\xfe, 10.0.0.7",
            b"1.2.3.4, , 10.0.0.7",
        ] {
            let h = [(&b"x-forwarded-for"[..], value)];
            assert_eq!(via("x-forwarded-for", &h), ip("10.0.0.7"));
        }
        let long = "1.1.1.1,".repeat(2_000) + "10.0.0.2";
        let h = [(&b"x-forwarded-for"[..], long.as_bytes())];
        assert_eq!(via("x-forwarded-for", &h), ip("1.1.1.1"));
        let all_proxies = "10.0.0.9,".repeat(100) + "10.0.0.2";
        let h = [(&b"x-forwarded-for"[..], all_proxies.as_bytes())];
        assert_eq!(via("x-forwarded-for", &h), ip("10.0.0.9"));
        let all_proxies = "for=10.0.0.9,".repeat(100) + "for=10.0.0.2";
        let h = [(&b"forwarded"[..], all_proxies.as_bytes())];
        assert_eq!(via("forwarded", &h), ip("10.0.0.9"));
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let proxies = Proxies::parse(&["10.0.0.0/8"]).unwrap();
        assert!(proxies.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert_eq!(group("::ffff:192.0.2.1".parse().unwrap(), 64), "::/64");
        let xff = ProxyHeader::default();
        assert_eq!(
            client_ip(ip("::ffff:192.0.2.1"), &[], &proxies, &xff),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn mapped_networks_are_the_ipv4_networks_they_map() {
        let nets = Proxies::parse(&["::ffff:203.0.113.0/120", "::ffff:10.0.0.1"]).unwrap();
        for yes in ["203.0.113.7", "::ffff:203.0.113.255", "10.0.0.1"] {
            assert!(nets.contains(yes.parse().unwrap()), "{yes}");
        }
        for no in ["203.0.114.1", "10.0.0.2", "2001:db8::1"] {
            assert!(!nets.contains(no.parse().unwrap()), "{no}");
        }
        let wide = Proxies::parse(&["::/0"]).unwrap();
        assert!(wide.contains("2001:db8::1".parse().unwrap()));
        assert!(!wide.contains("203.0.113.7".parse().unwrap()));
        assert!(!wide.contains("::ffff:203.0.113.7".parse().unwrap()));
    }

    #[test]
    fn bad_networks_are_reported() {
        assert_eq!(Proxies::parse(&["10.0.0.0/8", "nope"]).unwrap_err(), "nope");
        assert!(Proxies::parse(&["10.0.0.0/33"]).is_err());
    }
}
