//! Criterion benches of the core decision, with no Python in the way.
//!
//! `cargo bench --bench decision`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::hint::black_box;

use seawall::algorithm::fixed_window::FixedWindow;
use seawall::algorithm::gcra::gcra;
use seawall::algorithm::sliding_counter::SlidingCounter;
use seawall::algorithm::sliding_log::SlidingLog;
use seawall::algorithm::token_bucket::TokenBucket;
use seawall::clock::{Clock, SystemClock, NANOS_PER_SEC};
use seawall::dropin::client::ClientLimiter;

fn token_bucket(c: &mut Criterion) {
    let bucket = TokenBucket::new(1_000_000, 1e6, 1_000_000).unwrap();
    let mut state = bucket.fresh(0);
    let mut now = 0u64;
    c.bench_function("token_bucket/try_acquire", |b| {
        b.iter(|| {
            now += 1_000;
            black_box(bucket.try_acquire(&mut state, black_box(now), 1))
        })
    });
    c.bench_function("token_bucket/decide", |b| {
        b.iter(|| {
            now += 1_000;
            black_box(bucket.decide(&mut state, black_box(now), 1))
        })
    });
}

/// Every algorithm's full decision (admitting), against the token bucket's: one limit of 10⁹ per
/// second, one request per simulated microsecond.
fn algorithms(c: &mut Criterion) {
    let mut g = c.benchmark_group("algorithm/decide");
    let (count, window) = (1_000_000_000u64, NANOS_PER_SEC);
    let bucket = TokenBucket::new(count, 1e9, count).unwrap();
    let mut s = bucket.fresh(0);
    let mut now = 0u64;
    g.bench_function("token_bucket", |b| {
        b.iter(|| {
            now += 1_000;
            black_box(bucket.decide(&mut s, black_box(now), 1))
        })
    });
    let g_alg = gcra(count, window, None).unwrap();
    let mut s = g_alg.fresh(0);
    g.bench_function("gcra", |b| {
        b.iter(|| {
            now += 1_000;
            black_box(g_alg.decide(&mut s, black_box(now), 1))
        })
    });
    let fixed = FixedWindow::new(count, window);
    let mut s = fixed.fresh(0);
    g.bench_function("fixed_window", |b| {
        b.iter(|| {
            now += 1_000;
            black_box(fixed.decide(&mut s, black_box(now), 1, true))
        })
    });
    let counter = SlidingCounter::new(count, window);
    let mut s = counter.fresh(0);
    g.bench_function("sliding_window_counter", |b| {
        b.iter(|| {
            now += 1_000;
            black_box(counter.decide(&mut s, black_box(now), 1, true))
        })
    });
    // The log holds one entry per admitted request in the window: a 1 ms window at one request
    // per microsecond keeps it at a steady thousand entries, each decision adding one and
    // expiring one.
    let log = SlidingLog::new(count, NANOS_PER_SEC / 1_000);
    let mut s = log.fresh(0);
    g.bench_function("sliding_window_log", |b| {
        b.iter(|| {
            now += 1_000;
            black_box(log.decide(&mut s, black_box(now), 1, true))
        })
    });
    g.finish();
}

fn client_limiter(c: &mut Criterion) {
    let params = TokenBucket::new(1_000_000, 1e6, 1_000_000).unwrap();
    let limiter = ClientLimiter::new(params, 1_000_000);
    let now = 100 * NANOS_PER_SEC;
    c.bench_function("client_limiter/consume hot key", |b| {
        b.iter(|| black_box(limiter.consume(black_box("client-42"), now, 1)))
    });
    let keys: Vec<String> = (0..100_000).map(|i| format!("client-{i}")).collect();
    for k in &keys {
        limiter.consume(k, now, 1).unwrap();
    }
    let mut i = 0;
    c.bench_function("client_limiter/consume 100k keys", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(limiter.consume(&keys[i], now, 1))
        })
    });
    c.bench_function("client_limiter/new key at the bound", |b| {
        let small = ClientLimiter::new(params, 10_000);
        let mut n = 0u64;
        b.iter_batched(
            || {
                n += 1;
                format!("flood-{n}")
            },
            |key| black_box(small.consume(&key, now, 1)),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("clock/system now", |b| {
        b.iter(|| black_box(SystemClock.now()))
    });
}

/// Who is limited: a space-saving top-1,000 under a flood of distinct keys (every record
/// evicts) and under a skewed stream, and a rule's metrics recording a denial (three top-Ks).
fn violations(c: &mut Criterion) {
    use seawall::metrics::rule::RuleMetrics;
    use seawall::metrics::top_k::TopK;

    const K: usize = 1000;
    let flood: Vec<String> = (0..200_000u32)
        .map(|i| format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255))
        .collect();
    let skewed: Vec<String> = (0..200_000u64)
        .map(|i| {
            let x = (i.wrapping_mul(2_654_435_761) % 1_000_000) as f64 / 1e6;
            format!("user:{}", (x * x * x * 5000.0) as u32)
        })
        .collect();
    let mut group = c.benchmark_group("violations");
    for (name, stream) in [("flood", &flood), ("skewed", &skewed)] {
        let mut top = TopK::new(K);
        let mut i = 0;
        group.bench_function(format!("top_k_record_{name}"), |b| {
            b.iter(|| {
                top.record(black_box(&stream[i % stream.len()]), 1);
                i += 1;
            })
        });
        println!(
            "top-{K} after the {name} stream: {} bytes",
            top.heap_bytes()
        );
    }
    let metrics = RuleMetrics::new();
    let mut i = 0;
    group.bench_function("rule_metrics_denial_flood", |b| {
        b.iter(|| {
            let key = &flood[i % flood.len()];
            metrics.record(false, 0.0, key, Some(key), Some(key));
            i += 1;
        })
    });
    group.bench_function("rule_metrics_allowed", |b| {
        b.iter(|| metrics.record(true, black_box(3.0), "user:1", Some("10.0.0.1"), None))
    });
    group.finish();
}

/// The HTTP middleware's whole decision for a known client (`HttpPolicy::decide`, as the
/// middleware makes it per request): one default limit, by key source (the client's address,
/// the default; a header; `Authorization`, hashed), peer family and header style.
fn http(c: &mut Criterion) {
    use seawall::http::{HeaderStyle, HttpPolicy, KeySource, RequestView, Routes};
    use seawall::limiter::limit::{AlgorithmKind, LimitSet};
    use seawall::metrics::top_limited::TopLimited;

    let policy = |key: &str, headers| HttpPolicy {
        key_source: key.parse::<KeySource>().unwrap(),
        headers,
        top_limited: TopLimited::new(100),
        ..HttpPolicy::new(Routes::new(
            vec![],
            Some(LimitSet::parse("1000000000/second", AlgorithmKind::Gcra).unwrap()),
            10_000,
        ))
    };
    let headers: &[(&[u8], &[u8])] = &[
        (b"host", b"x"),
        (b"x-client-id", b"tenant-42"),
        (b"authorization", b"Bearer 0123456789abcdef"),
    ];
    let cases = [
        ("ip", "127.0.0.1", HeaderStyle::None, "none/ipv4"),
        ("ip", "2001:db8::1", HeaderStyle::None, "none/ipv6"),
        (
            "ip",
            "127.0.0.1",
            HeaderStyle::XRateLimit,
            "x-ratelimit/ipv4",
        ),
        (
            "ip",
            "2001:db8::1",
            HeaderStyle::XRateLimit,
            "x-ratelimit/ipv6",
        ),
        (
            "header:x-client-id",
            "127.0.0.1",
            HeaderStyle::None,
            "none/header",
        ),
        (
            "header:authorization",
            "127.0.0.1",
            HeaderStyle::None,
            "none/authorization",
        ),
    ];
    let mut g = c.benchmark_group("http/decide");
    for (key, peer, style, name) in cases {
        let policy = policy(key, style);
        let req = RequestView {
            peer: Some(peer),
            headers,
            path: "/",
            method: "GET",
            query: b"",
        };
        let mut now = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                now += 1_000;
                black_box(policy.decide(black_box(&req), now, None, None).unwrap())
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    token_bucket,
    algorithms,
    client_limiter,
    violations,
    http
);
criterion_main!(benches);
