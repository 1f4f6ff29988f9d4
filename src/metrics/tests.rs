//! Tests of the top-K counter against an exact model (a HashMap of every count), and of the
//! per-rule metrics.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::rule::RuleMetrics;
use super::top_k::{bounded_key, Entry, SharedTopK, TopK, MAX_KEY_BYTES};

/// Checks every guarantee the module documents, for `top` after the stream whose exact counts
/// are `truth`.
fn check_against_model(top: &TopK<String>, truth: &HashMap<String, u64>) {
    let k = top.capacity() as u64;
    let total: u64 = truth.values().sum();
    assert_eq!(top.total(), total);
    let snap = top.snapshot();
    assert_eq!(snap.len(), top.len());
    assert!(top.len() <= top.capacity());
    assert_eq!(top.len(), truth.len().min(top.capacity()));

    // Sorted by count, highest first; no key twice.
    for pair in snap.windows(2) {
        assert!(pair[0].count >= pair[1].count, "not sorted: {snap:?}");
    }
    let mut keys: Vec<&str> = snap.iter().map(|e| e.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), snap.len());

    // Each entry brackets its key's true count; the error is at most total / K.
    for e in &snap {
        let t = truth[&e.key];
        assert!(e.guaranteed() <= t && t <= e.count, "{e:?}, true count {t}");
        assert!(
            e.error * k <= total,
            "{e:?}: error above total/K ({total}/{k})"
        );
        assert_eq!(top.get(e.key.as_str()), Some((e.count, e.error)));
    }

    // Every key whose true count exceeds total / K is held.
    if k > 0 {
        for (key, &t) in truth {
            if t * k > total {
                assert!(
                    top.get(key.as_str()).is_some(),
                    "{key} ({t} of {total}) missing"
                );
            }
        }
    }

    // Accounting: counts add up to total; guaranteed counts plus other add up to total; other is
    // the sum of errors, and bounds the true total of the keys not held.
    let sum_count: u64 = snap.iter().map(|e| e.count).sum();
    let sum_guaranteed: u64 = snap.iter().map(Entry::guaranteed).sum();
    let sum_error: u64 = snap.iter().map(|e| e.error).sum();
    if k > 0 {
        assert_eq!(sum_count, total);
    }
    assert_eq!(sum_guaranteed + top.other(), total);
    if k > 0 {
        assert_eq!(top.other(), sum_error);
    }
    let held: std::collections::HashSet<&str> = snap.iter().map(|e| e.key.as_str()).collect();
    let outside: u64 = truth
        .iter()
        .filter(|(key, _)| !held.contains(key.as_str()))
        .map(|(_, &t)| t)
        .sum();
    assert!(
        outside <= top.other(),
        "{outside} outside > other {}",
        top.other()
    );

    // Fewer distinct keys than the capacity: everything exact.
    if truth.len() <= top.capacity() {
        assert_eq!(top.other(), 0);
        for e in &snap {
            assert_eq!((e.count, e.error), (truth[&e.key], 0));
        }
    }
}

fn run(capacity: usize, stream: &[(String, u64)]) -> (TopK<String>, HashMap<String, u64>) {
    let mut top = TopK::new(capacity);
    let mut truth: HashMap<String, u64> = HashMap::new();
    for (key, n) in stream {
        top.record(key, *n);
        if *n > 0 {
            *truth.entry(key.clone()).or_default() += n;
        }
    }
    (top, truth)
}

/// Keys from a small alphabet, skewed toward the low ones (a few heavy hitters, a long tail).
fn skewed_stream() -> impl Strategy<Value = Vec<(String, u64)>> {
    prop::collection::vec(((0u32..1000).prop_map(|x| x * x / 10_000), 0u64..6), 0..600)
        .prop_map(|v| v.into_iter().map(|(k, n)| (format!("k{k}"), n)).collect())
}

proptest! {
    #[test]
    fn top_k_matches_the_exact_model(capacity in 0usize..14, stream in skewed_stream()) {
        let (top, truth) = run(capacity, &stream);
        check_against_model(&top, &truth);
    }

    #[test]
    fn top_k_uniform_keys(
        capacity in 1usize..8,
        stream in prop::collection::vec((0u8..40, 1u64..4), 0..300),
    ) {
        let stream: Vec<(String, u64)> =
            stream.into_iter().map(|(k, n)| (format!("u{k}"), n)).collect();
        let (top, truth) = run(capacity, &stream);
        check_against_model(&top, &truth);
    }

    #[test]
    fn shared_top_k_is_the_same_counter(capacity in 1usize..8, stream in skewed_stream()) {
        let (top, _) = run(capacity, &stream);
        let shared = SharedTopK::new(capacity);
        for (key, n) in &stream {
            shared.record(key, *n);
        }
        let a = top.summary();
        let b = shared.summary();
        // Ties in count may evict different keys (the hash seeds differ); the totals may not.
        prop_assert_eq!(a.total, b.total);
        prop_assert_eq!(a.entries.len(), b.entries.len());
        prop_assert_eq!(
            a.entries.iter().map(|e| e.count).sum::<u64>(),
            b.entries.iter().map(|e| e.count).sum::<u64>()
        );
    }

    #[test]
    fn rule_metrics_match_a_model(
        decisions in prop::collection::vec(
            (any::<bool>(), 0u8..10, 0u8..6, prop::option::of(0u8..4), prop::option::of(0u8..3)),
            0..200,
        ),
    ) {
        let m = RuleMetrics::with_capacity(3);
        let (mut allowed, mut denied, mut sum) = (0u64, 0u64, 0.0f64);
        let mut users: HashMap<String, u64> = HashMap::new();
        let mut ips: HashMap<String, u64> = HashMap::new();
        let mut endpoints: HashMap<String, u64> = HashMap::new();
        for (ok, remaining, user, ip, endpoint) in &decisions {
            let user = format!("user:{user}");
            let ip = ip.map(|i| format!("10.0.0.{i}"));
            let endpoint = endpoint.map(|e| format!("/e/{e}"));
            m.record(*ok, f64::from(*remaining), &user, ip.as_deref(), endpoint.as_deref());
            sum += f64::from(*remaining);
            if *ok {
                allowed += 1;
            } else {
                denied += 1;
                *users.entry(user).or_default() += 1;
                if let Some(ip) = ip {
                    *ips.entry(ip).or_default() += 1;
                }
                if let Some(endpoint) = endpoint {
                    *endpoints.entry(endpoint).or_default() += 1;
                }
            }
        }
        let s = m.snapshot();
        let total = allowed + denied;
        prop_assert_eq!((s.total_requests, s.allowed_requests, s.denied_requests),
            (total, allowed, denied));
        let rate = if total == 0 { 0.0 } else { denied as f64 / total as f64 };
        prop_assert_eq!(s.hit_rate, rate);
        let mean = if total == 0 { 0.0 } else { sum / total as f64 };
        prop_assert!((s.avg_tokens_remaining - mean).abs() < 1e-9);
        for (snap, truth) in [
            (&s.violations_by_user, &users),
            (&s.violations_by_ip, &ips),
            (&s.violations_by_endpoint, &endpoints),
        ] {
            prop_assert_eq!(snap.total, truth.values().sum::<u64>());
            prop_assert!(snap.entries.len() <= 3);
            let guaranteed: u64 = snap.entries.iter().map(Entry::guaranteed).sum();
            prop_assert_eq!(guaranteed + snap.other, snap.total);
            for e in &snap.entries {
                let t = truth[&e.key];
                prop_assert!(e.guaranteed() <= t && t <= e.count);
            }
        }
    }
}

#[test]
fn empty_and_zero() {
    let mut top: TopK<String> = TopK::new(4);
    assert!(top.snapshot().is_empty());
    assert_eq!((top.total(), top.other(), top.len()), (0, 0, 0));
    top.record("a", 0);
    assert!(top.is_empty(), "n = 0 admits nothing");
    assert_eq!(top.get("a"), None);
}

#[test]
fn capacity_zero_counts_everything_as_other() {
    let mut top: TopK<String> = TopK::new(0);
    top.record("a", 3);
    top.record("b", 2);
    assert!(top.is_empty());
    assert_eq!((top.total(), top.other()), (5, 5));
}

#[test]
fn eviction_takes_the_smallest_and_inherits_its_count() {
    let mut top = TopK::new(3);
    top.record("a", 10);
    top.record("b", 2);
    top.record("c", 5);
    top.record("d", 1); // evicts b (2): d = 3, error 2
    assert_eq!(top.get("b"), None);
    assert_eq!(top.get("d"), Some((3, 2)));
    top.record("e", 1); // evicts d (3): e = 4, error 3
    assert_eq!(top.get("d"), None);
    assert_eq!(top.get("e"), Some((4, 3)));
    assert_eq!(top.other(), 3);
    let keys: Vec<String> = top.snapshot().into_iter().map(|e| e.key).collect();
    assert_eq!(keys, ["a", "c", "e"]);
    // A held key's increments are its own: they raise count, not error.
    top.record("e", 4);
    assert_eq!(top.get("e"), Some((8, 3)));
}

#[test]
fn heavy_hitter_survives_a_flood_of_distinct_keys() {
    let mut top = TopK::new(10);
    for i in 0..100_000u32 {
        top.record(&format!("flood-{i}"), 1);
        if i % 5 == 0 {
            top.record("attacker", 1);
        }
    }
    let first = &top.snapshot()[0];
    assert_eq!(first.key, "attacker");
    assert!(first.guaranteed() <= 20_000 && 20_000 <= first.count);
}

#[test]
fn long_keys_are_hashed_and_bounded() {
    let mut top = TopK::new(8);
    let exact = "k".repeat(MAX_KEY_BYTES);
    let long_a = "a".repeat(100_000);
    let long_b = format!("{}b", "a".repeat(99_999));
    top.record(&exact, 1);
    top.record(&long_a, 1);
    top.record(&long_a, 1);
    top.record(&long_b, 1);
    assert_eq!(
        top.get(exact.as_str()),
        Some((1, 0)),
        "a key at the bound is kept verbatim"
    );
    assert_eq!(top.get(bounded_key(&long_a).as_ref()), Some((2, 0)));
    assert_eq!(top.get(bounded_key(&long_b).as_ref()), Some((1, 0)));
    for e in top.snapshot() {
        assert!(e.key.len() <= MAX_KEY_BYTES, "{} bytes", e.key.len());
    }
    assert_eq!(bounded_key("abc"), "abc");
    let long_abc = "abc".repeat(50);
    let hashed = bounded_key(&long_abc);
    assert_eq!(hashed.len(), 71);
    assert!(hashed[7..]
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
}

#[test]
fn sha256_hex_is_the_standard_digest() {
    // SHA-256 of 129 'a's, computed independently (`printf 'a%.0s' {1..129} | sha256sum`).
    let key = "a".repeat(129);
    assert_eq!(
        bounded_key(&key),
        "sha256:c12cb024a2e5551cca0e08fce8f1c5e314555cc3fef6329ee994a3db752166ae"
    );
}

#[test]
fn reset_forgets_everything() {
    let mut top = TopK::new(2);
    for key in ["a", "b", "c", "a"] {
        top.record(key, 1);
    }
    top.reset();
    assert!(top.is_empty());
    assert_eq!((top.total(), top.other(), top.heap_bytes()), (0, 0, 0));
    top.record("z", 1);
    assert_eq!(
        top.snapshot(),
        vec![Entry {
            key: "z".to_string(),
            count: 1,
            error: 0
        }]
    );
}

#[test]
fn generic_keys() {
    let mut top: TopK<u64> = TopK::new(2);
    for key in [1u64, 2, 1, 3, 1] {
        top.record_key(&key, 1);
    }
    let snap = top.snapshot();
    assert_eq!(
        snap[0],
        Entry {
            key: 1,
            count: 3,
            error: 0
        }
    );
    assert_eq!(snap[1].key, 3);
    assert_eq!(top.total(), 5);
}

#[test]
fn saturates_instead_of_overflowing() {
    let mut top = TopK::new(1);
    top.record("a", u64::MAX);
    top.record("a", 1);
    top.record("b", 5);
    assert_eq!(top.total(), u64::MAX);
    assert_eq!(top.get("b"), Some((u64::MAX, u64::MAX)));
}

/// The memory bound of the issue: after 1,000,000 distinct keys, at most K keys are held and the
/// bytes are bounded by K (not by the stream).
#[test]
fn a_million_distinct_keys_stay_bounded() {
    const K: usize = 1000;
    let mut top = TopK::new(K);
    let mut key = String::new();
    let mut peak_len = 0;
    let mut peak_bytes = 0;
    for i in 0..1_000_000u32 {
        key.clear();
        use std::fmt::Write;
        write!(key, "client-{i}").unwrap();
        top.record(&key, 1);
        if i % 10_000 == 0 {
            peak_len = peak_len.max(top.len());
            peak_bytes = peak_bytes.max(top.heap_bytes());
        }
    }
    peak_len = peak_len.max(top.len());
    peak_bytes = peak_bytes.max(top.heap_bytes());
    assert_eq!(top.len(), K);
    assert!(peak_len <= K);
    assert_eq!(top.total(), 1_000_000);
    // Per key: a slot (~56 B), a heap index (4 B), table buckets (≤ 4 per key after tombstones,
    // 5 B each) and the key (≤ 14 B here): well under 150 B.
    assert!(peak_bytes <= K * 150, "{peak_bytes} bytes for {K} keys");

    // Keys at the length bound, and keys past it (hashed), stay bounded too.
    let mut top = TopK::new(K);
    for i in 0..20_000u32 {
        top.record(&format!("{i:0>width$}", width = MAX_KEY_BYTES + 50), 1);
    }
    assert!(
        top.heap_bytes() <= K * (150 + 71),
        "{} bytes",
        top.heap_bytes()
    );

    // Keys of every length up to the bound, so evictions reuse (and grow) key buffers: each
    // buffer stays under twice the bound.
    let mut top = TopK::new(K);
    for i in 0..50_000usize {
        let width = i % MAX_KEY_BYTES + 1;
        top.record(&format!("{i:0>width$}"), 1);
    }
    assert_eq!(top.len(), K);
    assert!(
        top.heap_bytes() <= K * (150 + 2 * MAX_KEY_BYTES),
        "{} bytes",
        top.heap_bytes()
    );
}

#[test]
fn shared_top_k_from_threads() {
    let top = Arc::new(SharedTopK::new(64));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let top = Arc::clone(&top);
            std::thread::spawn(move || {
                for i in 0..5_000u32 {
                    top.record(&format!("k{}", i % 50), 1);
                    top.record(&format!("t{t}"), 2);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = top.summary();
    assert_eq!(s.total, 4 * 5_000 * 3);
    // 54 distinct keys in 64 slots: every count exact.
    assert_eq!(s.other, 0);
    assert_eq!(top.get("k7"), Some((400, 0)));
    assert_eq!(top.get("t2"), Some((10_000, 0)));
    assert_eq!(top.len(), 54);
    top.reset();
    assert!(top.is_empty());
}

#[test]
fn rule_metrics_from_threads_and_reset() {
    let m = Arc::new(RuleMetrics::new());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for i in 0..2_000u32 {
                    let denied = i % 4 == 0;
                    let ip = format!("10.0.{t}.{}", i % 7);
                    m.record(!denied, 2.0, &format!("user:{t}"), Some(&ip), Some("/api"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = m.snapshot();
    assert_eq!((s.total_requests, s.denied_requests), (8_000, 2_000));
    assert_eq!(s.hit_rate, 0.25);
    assert_eq!(s.avg_tokens_remaining, 2.0);
    assert_eq!(s.violations_by_user.total, 2_000);
    assert_eq!(s.violations_by_user.entries.len(), 4);
    assert_eq!(s.violations_by_endpoint.entries[0].count, 2_000);
    assert_eq!(s.violations_by_ip.other, 0);
    assert!(m.heap_bytes() > 0);
    m.reset();
    let s = m.snapshot();
    assert_eq!((s.total_requests, s.hit_rate), (0, 0.0));
    assert!(s.violations_by_ip.entries.is_empty());
    assert_eq!(m.heap_bytes(), 0);
}

#[test]
fn rule_metrics_bad_remaining_counts_as_zero() {
    let m = RuleMetrics::new();
    for r in [f64::NAN, f64::INFINITY, -5.0, 4.0] {
        m.record(true, r, "u", None, None);
    }
    assert_eq!(m.snapshot().avg_tokens_remaining, 1.0);
}

#[test]
fn rule_metrics_snapshot_serializes() {
    let m = RuleMetrics::with_capacity(2);
    m.record(false, 0.5, "user:1", Some("::1"), Some("/items/{id}"));
    m.record(true, 1.5, "user:1", Some("::1"), Some("/items/{id}"));
    let v = serde_json::to_value(m.snapshot()).unwrap();
    assert_eq!(v["total_requests"], 2);
    assert_eq!(v["allowed_requests"], 1);
    assert_eq!(v["denied_requests"], 1);
    assert_eq!(v["hit_rate"], 0.5);
    assert_eq!(v["avg_tokens_remaining"], 1.0);
    assert_eq!(
        v["violations_by_endpoint"],
        serde_json::json!({
            "entries": [{"key": "/items/{id}", "count": 1, "error": 0}],
            "total": 1,
            "other": 0,
            "capacity": 2,
        })
    );
}
