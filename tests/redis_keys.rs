//! The Redis keys of a [`RedisLimiter`]: for any client keys (any Unicode, empty, braces, `%`,
//! NUL), two distinct client keys never share a Redis key, and all of one client key's Redis
//! keys hash to one Redis Cluster slot (so one script call never spans two slots).
//!
//! The slot is computed here from the Redis Cluster specification (CRC16-XMODEM of the hash tag,
//! or of the whole key when it has none, modulo 16384), not from seawall's code.
//!
//! 10,000 cases per property (set PROPTEST_CASES to change it). No Redis is needed: a limiter
//! connects on first use, and these tests only ask for its keys.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use proptest::prelude::*;

use seawall::breaker::BreakerConfig;
use seawall::limiter::limit::{AlgorithmKind, Limit, LimitSet};
use seawall::limiter::redis_failure::OnError;
use seawall::limiter::redis_limiter::{RedisLimiter, RedisLimiterConfig};
use seawall::store::redis::RedisConfig;

fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(10_000);
    ProptestConfig::with_cases(cases)
}

/// CRC16 as Redis Cluster uses it: XMODEM (polynomial 0x1021, initial value 0, no reflection).
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The Cluster slot of `key` (Redis Cluster spec, "Hash tags"): if the key holds a `{`, and a
/// `}` somewhere after that first `{`, and at least one byte between the first `{` and the
/// first `}` after it, only those bytes are hashed; otherwise the whole key is.
fn slot(key: &[u8]) -> u16 {
    if let Some(open) = key.iter().position(|&c| c == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&c| c == b'}') {
            if len > 0 {
                return crc16(&key[open + 1..open + 1 + len]) % 16384;
            }
        }
    }
    crc16(key) % 16384
}

#[test]
fn slot_matches_the_spec_examples() {
    // The spec's check value for CRC16-XMODEM, and its hash-tag examples.
    assert_eq!(crc16(b"123456789"), 0x31C3);
    assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
    assert_eq!(slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
    assert_eq!(slot(b"foo{{bar}}zap"), crc16(b"{bar") % 16384);
    assert_eq!(slot(b"foo{bar}{zap}"), crc16(b"bar") % 16384);
    // Values `CLUSTER KEYSLOT` gives.
    assert_eq!(slot(b"foo"), 12182);
    assert_eq!(slot(b"bar"), 5061);
}

fn limiter(prefix: &str, limits: Vec<Limit>) -> RedisLimiter {
    RedisLimiter::new(
        LimitSet::new(limits).unwrap(),
        RedisLimiterConfig {
            redis: RedisConfig {
                // Never reached: keys are computed without a connection.
                url: "redis://127.0.0.1:1/0".into(),
                connect_timeout: Duration::from_secs(1),
                command_timeout: Duration::from_secs(1),
            },
            prefix: prefix.into(),
            on_error: OnError::Deny,
            max_local_keys: 16,
            log_interval: 0,
            breaker: BreakerConfig::default(),
        },
        0,
    )
    .unwrap()
}

fn limit(text: &str, kind: AlgorithmKind, burst: Option<u64>) -> Limit {
    let spec = seawall::limiter::spec::LimitSpec::parse(text).unwrap();
    Limit::new(spec, kind, burst).unwrap()
}

/// Limit sets with many Redis keys per client key: two sliding logs (two keys each), a limit
/// written twice (`#1`), a burst, and every algorithm. Made once, for every case.
static LIMITERS: LazyLock<Vec<RedisLimiter>> = LazyLock::new(|| {
    use AlgorithmKind::*;
    vec![
        limiter("seawall:", vec![limit("10/second", Gcra, None)]),
        limiter(
            "seawall:",
            vec![
                limit("10/second", SlidingLog, None),
                limit("10/second", SlidingLog, None),
                limit("100/minute", Gcra, Some(20)),
                limit("100/minute", Gcra, None),
                limit("5/hour", TokenBucket, None),
                limit("5/hour", LeakyBucket, None),
                limit("5/hour", FixedWindow, None),
                limit("5/hour", SlidingCounter, None),
                limit("5/hour", SlidingLog, None),
            ],
        ),
        limiter(
            "",
            vec![limit("2/second", Gcra, None), limit("2/second", Gcra, None)],
        ),
        limiter("a%7D:", vec![limit("3/minute", SlidingLog, None)]),
    ]
});

/// Client keys made mostly of the characters that matter (braces, `%`, the hex digits of the
/// escapes, NUL), with any other Unicode scalar mixed in.
fn client_key() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        3 => prop::sample::select(vec!['{', '}', '%', '7', 'B', 'D', '2', '5', ':', '#', 'a', '\0']),
        1 => any::<char>(),
    ];
    prop::collection::vec(ch, 0..10).prop_map(|v| v.into_iter().collect())
}

fn check_one(lim: &RedisLimiter, key: &str) -> Result<HashSet<String>, TestCaseError> {
    let keys = lim.keys(key);
    let n = lim.limits().limits().len()
        + lim
            .limits()
            .limits()
            .iter()
            .filter(|l| l.kind() == AlgorithmKind::SlidingLog)
            .count();
    prop_assert_eq!(keys.len(), n, "{:?}: {:?}", key, keys);
    let set: HashSet<String> = keys.iter().cloned().collect();
    prop_assert_eq!(set.len(), keys.len(), "two limits share a key: {:?}", keys);
    let slots: HashSet<u16> = keys.iter().map(|k| slot(k.as_bytes())).collect();
    prop_assert_eq!(slots.len(), 1, "{:?} spans slots: {:?}", key, keys);
    for k in &keys {
        prop_assert!(
            k.starts_with(&lim.config().prefix),
            "{:?} lost its prefix",
            k
        );
    }
    Ok(set)
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn client_keys_never_share_state_and_keep_one_slot(a in client_key(), b in client_key()) {
        for lim in LIMITERS.iter() {
            let ka = check_one(lim, &a)?;
            let kb = check_one(lim, &b)?;
            if a == b {
                prop_assert_eq!(ka, kb);
            } else {
                prop_assert!(ka.is_disjoint(&kb), "{:?} and {:?} share a key: {:?} {:?}", a, b, ka, kb);
            }
        }
    }

    #[test]
    fn any_unicode_key_keeps_one_slot(a in any::<String>(), b in any::<String>()) {
        for lim in &LIMITERS[1..2] {
            let ka = check_one(lim, &a)?;
            let kb = check_one(lim, &b)?;
            prop_assert_eq!(a == b, !ka.is_disjoint(&kb));
        }
    }
}

/// Two limiters with different prefixes never share a key either, whatever the client keys.
#[test]
fn prefixes_keep_limiters_apart() {
    let a = limiter("p", vec![limit("1/second", AlgorithmKind::Gcra, None)]);
    let b = limiter("p%", vec![limit("1/second", AlgorithmKind::Gcra, None)]);
    for (x, y) in [("", "%"), ("%", ""), ("}", "%7D"), ("a}", "a%7D")] {
        let kx: HashSet<String> = a.keys(x).into_iter().collect();
        let ky: HashSet<String> = b.keys(y).into_iter().collect();
        assert!(kx.is_disjoint(&ky), "{kx:?} {ky:?}");
    }
}

/// Keys that always worked keep their layout byte for byte, so an upgrade keeps their state;
/// keys that could leave the hash tag (`}`, empty) are escaped inside it.
#[test]
fn layout() {
    use AlgorithmKind::*;
    let lim = limiter(
        "seawall:",
        vec![
            limit("10/second", Gcra, None),
            limit("10/second", Gcra, None),
            limit("5/minute", SlidingLog, None),
        ],
    );
    let k = |key: &str| lim.keys(key);
    assert_eq!(
        k("user:1"),
        [
            "seawall:{user:1}:gcra:10/1s",
            "seawall:{user:1}:gcra:10/1s#1",
            "seawall:{user:1}:sliding_window_log:5/60s",
            "seawall:{user:1}:sliding_window_log:5/60s:total",
        ]
    );
    assert_eq!(k("a%40b{")[0], "seawall:{a%40b{}:gcra:10/1s");
    assert_eq!(k("}x")[0], "seawall:{%7Dx}%:gcra:10/1s");
    assert_eq!(k("")[0], "seawall:{%}%:gcra:10/1s");
    assert_eq!(k("a}b{c%")[0], "seawall:{a%7Db%7Bc%25}%:gcra:10/1s");
}
