//! The HTTP policy on Redis without Python: a request's global and per-client budgets in one
//! script call against a real redis-server, and what each `on_error` answers when Redis is gone.

use std::time::Duration;

use seawall::breaker::BreakerConfig;
use seawall::http::redis_budgets::{Begun, RedisBudgets};
use seawall::http::{HttpPolicy, Outcome, RequestView, Routes, Rule};
use seawall::limiter::limit::{AlgorithmKind, LimitSet};
use seawall::limiter::memory_limiter::Limiter;
use seawall::limiter::redis_failure::OnError;
use seawall::limiter::redis_guard::RedisLimiterConfig;
use seawall::store::redis::pool::BlockingPool;
use seawall::store::redis::RedisConfig;

mod common;
use common::{config, Server};

fn set(text: &str) -> LimitSet {
    LimitSet::parse(text, AlgorithmKind::Gcra).unwrap()
}

fn policy(redis: RedisConfig, on_error: OnError, prefix: &str) -> HttpPolicy {
    let rules = vec![Rule::new("/login", set("1/minute"), None, None).unwrap()];
    let routes = Routes::new(rules, Some(set("2/minute")), 100);
    let global = set("4/minute");
    let config = RedisLimiterConfig {
        redis,
        prefix: prefix.into(),
        on_error,
        max_local_keys: 100,
        log_interval: 0,
        breaker: BreakerConfig {
            failure_threshold: 1000,
            ..BreakerConfig::default()
        },
    };
    let budgets = RedisBudgets::new(Some(&global), &routes, config, 0).unwrap();
    HttpPolicy {
        global: Some(Limiter::new(global, 1)),
        redis: Some(budgets),
        ..HttpPolicy::new(routes)
    }
}

fn request<'a>(peer: &'a str, path: &'a str) -> RequestView<'a> {
    RequestView {
        peer: Some(peer),
        headers: &[],
        path,
        method: "GET",
        query: b"",
    }
}

/// Decides on the blocking pool, at the manual time `now` (also sent to the script).
fn decide(p: &HttpPolicy, pool: &BlockingPool, peer: &str, path: &str, now: u64) -> Outcome {
    match p
        .begin(&request(peer, path), None, None, Some(now), now)
        .unwrap()
    {
        Begun::Done(o) => o,
        Begun::Pending(pending) => p.finish_blocking(pool, pending).unwrap(),
    }
}

fn status(o: &Outcome) -> u16 {
    match o {
        Outcome::Pass | Outcome::Allowed(_) => 200,
        Outcome::Limited(..) => 429,
        Outcome::Unavailable(..) => 503,
    }
}

#[test]
fn global_route_and_client_budgets_are_decided_together_all_or_nothing() {
    let Some(server) = Server::start() else {
        return;
    };
    let p = policy(server.config(), OnError::Deny, "http-test:");
    let pool = BlockingPool::default();
    let now = 1_000_000_000_000;
    let mut got = Vec::new();
    for (peer, path) in [
        ("192.0.2.1", "/"),
        ("192.0.2.1", "/"),
        ("192.0.2.1", "/"), // its default budget (2) is spent
        ("192.0.2.1", "/login"),
        ("192.0.2.1", "/login"), // the rule's (1) is spent
        ("192.0.2.2", "/"),      // the global budget's 4th
        ("192.0.2.3", "/"),      // global spent: refused, and 192.0.2.3 keeps its budget
    ] {
        got.push(status(&decide(&p, &pool, peer, path, now)));
    }
    assert_eq!(got, [200, 200, 429, 200, 429, 200, 429]);
    let Outcome::Limited(headers, _) = decide(&p, &pool, "192.0.2.3", "/", now) else {
        panic!("the global budget is spent");
    };
    assert!(headers
        .iter()
        .any(|(n, v)| *n == b"x-ratelimit-limit" && &v[..] == b"4"));
    // 15 s later the global budget has one more (GCRA, 4 a minute): 192.0.2.3 gets it.
    let later = now + 15_000_000_000;
    assert_eq!(status(&decide(&p, &pool, "192.0.2.3", "/", later)), 200);
}

#[test]
fn what_each_on_error_answers_when_redis_is_gone() {
    let Some(server) = Server::start() else {
        return;
    };
    let gone = config(server.port, Duration::from_millis(200));
    drop(server);
    let pool = BlockingPool::default();
    let answers = |on_error| {
        let p = policy(gone.clone(), on_error, "http-gone:");
        (0..3)
            .map(|_| decide(&p, &pool, "192.0.2.1", "/", 0))
            .collect::<Vec<_>>()
    };
    let allow = answers(OnError::Allow);
    assert!(
        allow.iter().all(|o| *o == Outcome::Pass),
        "no header: no budget is known"
    );
    let deny = answers(OnError::Deny);
    for o in &deny {
        let Outcome::Unavailable(headers, _) = o else {
            panic!("deny is a 503, got {o:?}");
        };
        assert_eq!(headers[0].0, b"retry-after");
    }
    let local = answers(OnError::Local);
    assert_eq!(
        local.iter().map(status).collect::<Vec<_>>(),
        [200, 200, 429]
    );
    let Outcome::Limited(headers, _) = &local[2] else {
        unreachable!()
    };
    assert!(
        headers.iter().all(|(n, _)| !n.starts_with(b"x-ratelimit")),
        "a process's budget is not shown as the app's"
    );
}
