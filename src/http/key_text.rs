//! [`KeyText`]: a client key's text, built without a heap allocation when it is short (every
//! address key is), so that deciding a request for a known client allocates nothing.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Key text up to this many bytes is held inline by default: any address key (`ip:` and an
/// IPv6 network, at most 46 bytes).
pub const KEY_INLINE: usize = 48;

/// A client key's text: inline up to `N` bytes, on the heap beyond. Reads as a `&str`.
///
/// ```
/// use seawall::http::key_text::KeyText;
/// use std::fmt::Write;
///
/// let mut key: KeyText = KeyText::new();
/// key.push_str("ip:");
/// write!(key, "{}", 7).unwrap();
/// assert_eq!(key, "ip:7");
/// assert!(!key.spilled());
/// assert_eq!(key.into_string(), "ip:7");
/// ```
///
/// Its bytes are always UTF-8: they are private and only ever extended with whole `str`s
/// ([`KeyText::push_str`], `fmt::Write`, `From<&str>`) or ASCII (`push_ipv4`,
/// `push_hex_groups`). (A struct of word-aligned fields rather than an enum of an inline and a
/// heap variant: moved from call to call, an enum's odd offsets cost more than its size saves.)
#[derive(Clone)]
pub struct KeyText<const N: usize = KEY_INLINE> {
    /// The inline text's length (unused once spilled).
    len: usize,
    buf: [u8; N],
    /// The whole text, once it outgrew `buf`.
    heap: Option<Vec<u8>>,
}

impl<const N: usize> KeyText<N> {
    /// An empty key.
    #[inline]
    pub fn new() -> Self {
        KeyText {
            len: 0,
            buf: [0; N],
            heap: None,
        }
    }

    /// Appends `s`.
    #[inline]
    pub fn push_str(&mut self, s: &str) {
        self.push_utf8(s.as_bytes());
    }

    /// Appends `bytes`, which leave the text UTF-8 (a whole `str`, or ASCII).
    #[inline]
    fn push_utf8(&mut self, bytes: &[u8]) {
        if let Some(v) = &mut self.heap {
            return v.extend_from_slice(bytes);
        }
        let end = self.len + bytes.len();
        match self.buf.get_mut(self.len..end) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.spill(bytes),
        }
    }

    /// Moves the text to the heap, with `bytes` appended.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, bytes: &[u8]) {
        let mut v = Vec::with_capacity(self.len() + bytes.len());
        v.extend_from_slice(self.as_str().as_bytes());
        v.extend_from_slice(bytes);
        self.heap = Some(v);
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        let bytes = match &self.heap {
            None => &self.buf[..self.len],
            Some(v) => v,
        };
        // SAFETY: the bytes are UTF-8 (see the type's doc). Checking again on every read cost a tenth
        // of an HTTP decision.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// The length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.heap {
            None => self.len,
            Some(v) => v.len(),
        }
    }

    /// Whether the text is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the text outgrew the inline room (and lives on the heap).
    pub fn spilled(&self) -> bool {
        self.heap.is_some()
    }

    /// The text as a `String`.
    pub fn into_string(self) -> String {
        self.as_str().to_owned()
    }

    /// Appends the key part for an address: IPv4 as is, IPv6 as its `/ipv6_prefix` network
    /// (the whole address from 128 on), as [`super::client_ip::group`] spells it.
    ///
    /// ```
    /// use seawall::http::key_text::KeyText;
    ///
    /// let mut key: KeyText = KeyText::new();
    /// key.push_group("2001:db8:1:2:3:4:5:6".parse().unwrap(), 48);
    /// assert_eq!(key, "2001:db8:1::/48");
    /// ```
    pub fn push_group(&mut self, ip: IpAddr, ipv6_prefix: u8) {
        match ip {
            IpAddr::V4(v4) => self.push_ipv4(v4),
            IpAddr::V6(v6) if ipv6_prefix >= 128 => self.push_ipv6(v6),
            IpAddr::V6(v6) => {
                let mask = match ipv6_prefix {
                    0 => 0,
                    p => u128::MAX << (128 - u32::from(p)),
                };
                self.push_ipv6(Ipv6Addr::from(u128::from(v6) & mask));
                self.push_str("/");
                self.push_str(itoa::Buffer::new().format(ipv6_prefix));
            }
        }
    }

    /// Appends an IPv6 address as its `Display` does (RFC 5952: lower-case hex without leading
    /// zeros, the first longest run of two or more zero groups as `::`, an IPv4-mapped address
    /// as `::ffff:` and dotted decimal), without core::fmt.
    fn push_ipv6(&mut self, ip: Ipv6Addr) {
        if let Some(v4) = ip.to_ipv4_mapped() {
            self.push_str("::ffff:");
            return self.push_ipv4(v4);
        }
        let groups = ip.segments();
        // The first longest run of zero groups.
        let (mut start, mut len, mut run) = (0, 0, 0);
        for (i, &g) in groups.iter().enumerate() {
            run = if g == 0 { run + 1 } else { 0 };
            if run > len {
                (start, len) = (i + 1 - run, run);
            }
        }
        if len > 1 {
            self.push_hex_groups(&groups[..start]);
            self.push_str("::");
            self.push_hex_groups(&groups[start + len..]);
        } else {
            self.push_hex_groups(&groups);
        }
    }

    /// Appends IPv6 groups, `:`-separated, in lower-case hex without leading zeros (ASCII).
    fn push_hex_groups(&mut self, groups: &[u16]) {
        let mut buf = [0u8; 39];
        let mut n = 0;
        for (i, &g) in groups.iter().enumerate() {
            if i > 0 {
                buf[n] = b':';
                n += 1;
            }
            let digits = (16 - g.leading_zeros()).div_ceil(4).max(1);
            for d in (0..digits).rev() {
                buf[n] = b"0123456789abcdef"[usize::from((g >> (4 * d)) & 0xf)];
                n += 1;
            }
        }
        self.push_utf8(&buf[..n]);
    }

    /// Appends an IPv4 address in dotted decimal (ASCII), as its `Display` does, without
    /// core::fmt.
    fn push_ipv4(&mut self, ip: Ipv4Addr) {
        let mut buf = [0u8; 15];
        let mut n = 0;
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                buf[n] = b'.';
                n += 1;
            }
            if octet >= 100 {
                buf[n] = b'0' + octet / 100;
                n += 1;
            }
            if octet >= 10 {
                buf[n] = b'0' + octet / 10 % 10;
                n += 1;
            }
            buf[n] = b'0' + octet % 10;
            n += 1;
        }
        self.push_utf8(&buf[..n]);
    }
}

impl<const N: usize> std::ops::Deref for KeyText<N> {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> fmt::Write for KeyText<N> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

impl<const N: usize> fmt::Debug for KeyText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for KeyText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> Default for KeyText<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> From<&str> for KeyText<N> {
    fn from(s: &str) -> Self {
        let mut text = Self::new();
        text.push_str(s);
        text
    }
}

impl<const N: usize> PartialEq for KeyText<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<const N: usize> Eq for KeyText<N> {}

impl<const N: usize> PartialEq<str> for KeyText<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for KeyText<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The grouping as it was written with `format!` (the spelling keys must keep).
    fn formatted(ip: IpAddr, prefix: u8) -> String {
        match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) if prefix >= 128 => v6.to_string(),
            IpAddr::V6(v6) => {
                let mask = if prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(prefix))
                };
                format!("{}/{}", Ipv6Addr::from(u128::from(v6) & mask), prefix)
            }
        }
    }

    proptest! {
        #[test]
        fn ipv4_is_spelled_as_display_spells_it(bits: u32) {
            let ip = Ipv4Addr::from(bits);
            let mut key: KeyText = KeyText::new();
            key.push_group(IpAddr::V4(ip), 64);
            prop_assert_eq!(key.as_str(), ip.to_string());
        }

        #[test]
        fn ipv6_is_spelled_as_display_spells_it(
            groups in proptest::array::uniform8(prop_oneof![Just(0u16), Just(1), any::<u16>()]),
            mapped: bool,
        ) {
            let mut ip = Ipv6Addr::from(groups);
            if mapped {
                ip = Ipv4Addr::from(u128::from(ip) as u32).to_ipv6_mapped();
            }
            let mut key: KeyText = KeyText::new();
            key.push_ipv6(ip);
            prop_assert_eq!(key.as_str(), ip.to_string());
        }

        #[test]
        fn ipv6_groups_as_before(bits: u128, prefix in 0u8..=200) {
            let ip = IpAddr::V6(Ipv6Addr::from(bits));
            let mut key: KeyText = KeyText::new();
            key.push_group(ip, prefix);
            prop_assert_eq!(key.as_str(), formatted(ip, prefix));
            prop_assert!(!key.spilled());
        }

        #[test]
        fn long_text_spills_intact(parts in proptest::collection::vec("\\PC{0,40}", 0..8)) {
            let mut key: KeyText = KeyText::new();
            for p in &parts {
                key.push_str(p);
            }
            prop_assert_eq!(key.as_str(), parts.concat());
            prop_assert_eq!(key.spilled(), parts.concat().len() > KEY_INLINE);
        }
    }

    #[test]
    fn the_longest_address_keys_stay_inline() {
        let mut key: KeyText = KeyText::from("ip:");
        key.push_group(
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            127,
        );
        assert_eq!(key, "ip:ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127");
        assert!(!key.spilled());
        let mut key: KeyText = KeyText::from("ip:");
        key.push_group("255.255.255.255".parse().unwrap(), 64);
        assert_eq!(key, "ip:255.255.255.255");
    }
}
