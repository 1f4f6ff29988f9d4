//! No client can change its key with proxy headers unless its peer is a trusted proxy, and then
//! only through the one configured header.

use proptest::prelude::*;
use std::net::IpAddr;

use seawall::http::client_ip::{client_ip, Proxies, ProxyHeader};

fn header_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"x-forwarded-for".to_vec()),
        Just(b"X-Forwarded-For".to_vec()),
        Just(b"forwarded".to_vec()),
        Just(b"Forwarded".to_vec()),
        Just(b"x-real-ip".to_vec()),
        Just(b"cf-connecting-ip".to_vec()),
        Just(b"host".to_vec()),
    ]
}

fn proxy_header() -> impl Strategy<Value = ProxyHeader> {
    prop_oneof![
        Just("X-Forwarded-For"),
        Just("Forwarded"),
        Just("X-Real-IP"),
        Just("CF-Connecting-IP"),
    ]
    .prop_map(|name| ProxyHeader::parse(name).unwrap())
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        "[0-9a-f:., ;=\"\\\\\\[\\]_]{0,80}".prop_map(|s| s.into_bytes()),
        proptest::collection::vec(
            prop_oneof![
                any::<[u8; 4]>().prop_map(|o| IpAddr::from(o).to_string()),
                any::<[u8; 16]>().prop_map(|o| IpAddr::from(o).to_string()),
                Just("10.0.0.5".to_string()),
                Just("for=10.1.2.3".to_string()),
                Just("for=203.0.113.9;proto=https".to_string()),
                Just("for=\"[2001:db8::7]:80\"".to_string()),
                Just("host=\"a,for=9.9.9.9\"".to_string()),
                Just("for=unknown".to_string()),
            ],
            0..8
        )
        .prop_map(|hops| hops.join(", ").into_bytes()),
    ]
}

fn view(headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
    headers
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn untrusted_peers_keep_their_own_address(
        peer in any::<[u8; 4]>(),
        header in proxy_header(),
        headers in proptest::collection::vec((header_name(), header_value()), 0..6),
    ) {
        let proxies = Proxies::parse(&["10.0.0.0/8", "2001:db8::/32"]).unwrap();
        let peer = IpAddr::from(peer);
        prop_assume!(!proxies.contains(peer));
        prop_assert_eq!(client_ip(Some(peer), &view(&headers), &proxies, &header), Some(peer));
    }

    #[test]
    fn other_headers_from_a_trusted_proxy_never_change_the_client(
        last in 0u8..=255,
        header in proxy_header(),
        headers in proptest::collection::vec((header_name(), header_value()), 0..6),
    ) {
        let proxies = Proxies::parse(&["10.0.0.0/8"]).unwrap();
        let peer = IpAddr::from([10, 0, 0, last]);
        let only: Vec<(Vec<u8>, Vec<u8>)> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(header.name()))
            .cloned()
            .collect();
        prop_assert_eq!(
            client_ip(Some(peer), &view(&headers), &proxies, &header),
            client_ip(Some(peer), &view(&only), &proxies, &header)
        );
    }

    #[test]
    fn trusted_peers_yield_an_address_from_the_chain_or_a_proxy(
        last in 0u8..=255,
        header in proxy_header(),
        headers in proptest::collection::vec((header_name(), header_value()), 0..6),
    ) {
        let proxies = Proxies::parse(&["10.0.0.0/8"]).unwrap();
        let peer = IpAddr::from([10, 0, 0, last]);
        let got = client_ip(Some(peer), &view(&headers), &proxies, &header).unwrap();
        // Either a proxy address (the walk stopped at a trusted hop) or an address that appears
        // literally in the configured header.
        let text = got.to_string();
        prop_assert!(
            proxies.contains(got)
                || headers.iter().any(|(n, v)| n.eq_ignore_ascii_case(header.name())
                    && String::from_utf8_lossy(v).contains(&text)),
            "{} came from nowhere", text
        );
    }
}
