//! No client can change its key with proxy headers unless its peer is a trusted proxy.

use proptest::prelude::*;
use std::net::IpAddr;

use seawall::http::client_ip::{client_ip, Proxies};

fn header_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"x-forwarded-for".to_vec()),
        Just(b"X-Forwarded-For".to_vec()),
        Just(b"forwarded".to_vec()),
        Just(b"x-real-ip".to_vec()),
        Just(b"host".to_vec()),
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        "[0-9a-f:., ;=\"\\[\\]]{0,80}".prop_map(|s| s.into_bytes()),
        proptest::collection::vec(
            prop_oneof![
                any::<[u8; 4]>().prop_map(|o| IpAddr::from(o).to_string()),
                any::<[u8; 16]>().prop_map(|o| IpAddr::from(o).to_string()),
                Just("10.0.0.5".to_string()),
                Just("for=10.1.2.3".to_string()),
            ],
            0..8
        )
        .prop_map(|hops| hops.join(", ").into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn untrusted_peers_keep_their_own_address(
        peer in any::<[u8; 4]>(),
        headers in proptest::collection::vec((header_name(), header_value()), 0..6),
    ) {
        let proxies = Proxies::parse(&["10.0.0.0/8", "2001:db8::/32"]).unwrap();
        let peer = IpAddr::from(peer);
        prop_assume!(!proxies.contains(peer));
        let view: Vec<(&[u8], &[u8])> = headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
        prop_assert_eq!(client_ip(Some(peer), &view, &proxies), Some(peer));
    }

    #[test]
    fn trusted_peers_yield_an_address_from_the_chain_or_a_proxy(
        last in 0u8..=255,
        headers in proptest::collection::vec((header_name(), header_value()), 0..6),
    ) {
        let proxies = Proxies::parse(&["10.0.0.0/8"]).unwrap();
        let peer = IpAddr::from([10, 0, 0, last]);
        let view: Vec<(&[u8], &[u8])> = headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
        let got = client_ip(Some(peer), &view, &proxies).unwrap();
        // Either a proxy address (the walk stopped at a trusted hop) or an address that appears
        // literally in one of the headers.
        let text = got.to_string();
        prop_assert!(
            proxies.contains(got)
                || headers.iter().any(|(_, v)| String::from_utf8_lossy(v).contains(&text)),
            "{} came from nowhere", text
        );
    }
}
