//! The rules engine against a plain model of seed 002's selection rule (A3, A4, A18), and its
//! keys and checks.

use proptest::prelude::*;
use seawall::rules::{RequestFacts, RuleAlgorithm, RuleSpec, Rules, Scope, Strategy};

fn spec(name: &str, priority: i64, enabled: bool) -> RuleSpec {
    RuleSpec {
        name: name.into(),
        scope: Scope::PerUser,
        rate: 10,
        window_seconds: 60.0,
        burst: None,
        algorithm: None,
        strategy: None,
        endpoints: vec![],
        user_ids: vec![],
        ip_addresses: vec![],
        priority,
        enabled,
        max_delay: None,
        max_queued: None,
    }
}

/// A rule's filters as small choices: (endpoint filter, user filter, ip filter), each maybe.
type Filters = (Option<u8>, Option<u8>, Option<u8>);

fn endpoint(i: u8) -> String {
    format!("/e{i}")
}

fn user(i: u8) -> String {
    format!("u{i}")
}

fn net(i: u8) -> String {
    format!("10.0.{i}.0/24")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Selection is the highest priority among enabled rules that have a filter and whose every
    /// filter matches (ties: the first added), else the default.
    #[test]
    fn selection_follows_the_model(
        rules in proptest::collection::vec(
            ((proptest::option::of(0u8..3), proptest::option::of(0u8..3), proptest::option::of(0u8..3)),
             -2i64..3, proptest::bool::weighted(0.85)),
            0..8,
        ),
        req in (0u8..3, 0u8..3, 0u8..3),
        with_default in any::<bool>(),
    ) {
        let set = Rules::new(RuleAlgorithm::TokenBucket, Strategy::RetryAfter, 100);
        set.add(spec("default", 0, true)).unwrap();
        for (i, ((e, u, ip), priority, enabled)) in rules.iter().enumerate() {
            let mut s = spec(&format!("r{i}"), *priority, *enabled);
            s.endpoints = e.map(endpoint).into_iter().collect();
            s.user_ids = u.map(user).into_iter().collect();
            s.ip_addresses = ip.map(net).into_iter().collect();
            set.add(s).unwrap();
        }
        let path = endpoint(req.0);
        let who = format!("user:{}", user(req.1));
        let facts = RequestFacts {
            endpoint: Some(&path),
            user: Some(&who),
            ip: Some(format!("10.0.{}.7", req.2).parse().unwrap()),
            user_id: None,
        };
        let model = rules
            .iter()
            .enumerate()
            .filter(|(_, ((e, u, ip), _, enabled)): &(usize, &(Filters, i64, bool))| {
                *enabled
                    && (e.is_some() || u.is_some() || ip.is_some())
                    && e.is_none_or(|e| e == req.0)
                    && u.is_none_or(|u| u == req.1)
                    && ip.is_none_or(|ip| ip == req.2)
            })
            // Highest priority; among equals the first added (max_by_key keeps the last max, so
            // walk in reverse).
            .rev()
            .max_by_key(|(_, (_, priority, _))| *priority)
            .map(|(i, _)| format!("r{i}"))
            .or_else(|| with_default.then(|| "default".to_string()));
        let got = set.select(&facts, with_default.then_some("default")).unwrap();
        prop_assert_eq!(got, model);
    }

    /// No two (rule, scope, identifier) share a key, long (hashed) identifiers included: an
    /// identifier written as a hashed one's key part never stands for it.
    #[test]
    fn keys_never_collide(
        a in ("[a-c|:]{0,4}", 0usize..4, "[a-c|:#0-9.]{0,6}|x{257,260}"),
        b in ("[a-c|:]{0,4}", 0usize..4, "[a-c|:#0-9.]{0,6}|x{257,260}"),
    ) {
        let scopes = [Scope::Global, Scope::PerUser, Scope::PerIp, Scope::PerEndpoint];
        let key = |(rule, scope, id): &(String, usize, String)| {
            let facts = RequestFacts { user: Some(id), endpoint: Some(id), ..Default::default() };
            Rules::key(rule, scopes[*scope], &facts)
        };
        let same_budget = a.0 == b.0 && a.1 == b.1 && (a.1 == 0 || a.2 == b.2);
        prop_assert_eq!(key(&a) == key(&b), same_budget);
    }
}

#[test]
fn named_rules_apply_whatever_their_filters_and_disabled_ones_admit() {
    let set = Rules::new(RuleAlgorithm::TokenBucket, Strategy::RetryAfter, 100);
    let mut narrow = spec("narrow", 0, true);
    narrow.rate = 2;
    narrow.endpoints = vec!["/only/here".into()];
    set.add(narrow).unwrap();
    let elsewhere = RequestFacts {
        user: Some("alice"),
        endpoint: Some("/elsewhere"),
        ip: None,
        user_id: None,
    };
    let got: Vec<bool> = (0..3)
        .map(|_| {
            set.check("narrow", &elsewhere, 0, 1)
                .unwrap()
                .decision
                .allowed
        })
        .collect();
    assert_eq!(got, [true, true, false]);
    let mut off = spec("narrow", 0, false);
    off.rate = 2;
    set.add(off).unwrap();
    assert!(
        set.check("narrow", &elsewhere, 0, 1)
            .unwrap()
            .decision
            .allowed
    );
    let e = set.check("missing", &elsewhere, 0, 1).unwrap_err();
    assert!(e.to_string().contains("\"missing\""));
}

#[test]
fn replacing_a_rule_keeps_its_budgets_only_if_its_numbers_stay() {
    let set = Rules::new(RuleAlgorithm::TokenBucket, Strategy::RetryAfter, 100);
    let mut r = spec("r", 0, true);
    r.rate = 1;
    set.add(r.clone()).unwrap();
    let alice = RequestFacts {
        user: Some("alice"),
        ..Default::default()
    };
    assert!(set.check("r", &alice, 0, 1).unwrap().decision.allowed);
    r.priority = 5; // the same numbers: alice is still spent
    set.add(r.clone()).unwrap();
    assert!(!set.check("r", &alice, 0, 1).unwrap().decision.allowed);
    r.rate = 2; // other numbers: budgets afresh
    set.add(r).unwrap();
    assert!(set.check("r", &alice, 0, 1).unwrap().decision.allowed);
}

#[test]
fn bad_rules_name_their_field() {
    type Spoil = fn(&mut RuleSpec);
    let cases: [(&str, Spoil); 6] = [
        ("name", |s| s.name = " ".into()),
        ("rate", |s| s.rate = 0),
        ("window_seconds", |s| s.window_seconds = 0.0),
        ("burst", |s| s.burst = Some(21)),
        ("ip_addresses", |s| {
            s.ip_addresses = vec!["10.0.0.0/99".into()]
        }),
        ("max_delay", |s| s.max_delay = Some(-1.0)),
    ];
    for (field, spoil) in cases {
        let mut s = spec("r", 0, true);
        spoil(&mut s);
        let e = s
            .compile(RuleAlgorithm::TokenBucket, Strategy::Hard)
            .unwrap_err();
        assert!(e.to_string().starts_with(field), "{field}: {e}");
    }
    let unknown = serde_json::from_str::<RuleSpec>(
        r#"{"name": "r", "scope": "per_user", "rate": 1, "window_seconds": 1, "sope": 1}"#,
    );
    assert!(unknown.unwrap_err().to_string().contains("sope"));
}

#[test]
fn token_bucket_burst_and_leaky_bucket_spacing() {
    let set = Rules::new(RuleAlgorithm::TokenBucket, Strategy::RetryAfter, 100);
    let mut tb = spec("tb", 0, true);
    tb.burst = Some(15);
    set.add(tb).unwrap();
    let mut lb = spec("lb", 0, true);
    lb.algorithm = Some(RuleAlgorithm::LeakyBucket);
    set.add(lb).unwrap();
    let who = RequestFacts {
        user: Some("x"),
        ..Default::default()
    };
    let burst = (0..20)
        .filter(|_| set.check("tb", &who, 0, 1).unwrap().decision.allowed)
        .count();
    assert_eq!(burst, 15, "a bucket of `burst` tokens");
    let now = 1_000_000_000_000;
    assert!(set.check("lb", &who, now, 1).unwrap().decision.allowed);
    let second = set.check("lb", &who, now, 1).unwrap().decision;
    assert!(!second.allowed, "no bursts: one per window / rate");
    assert_eq!(second.retry_after, 6_000_000_000);
}

#[test]
fn throttle_books_each_refused_request_a_slot_of_its_own_up_to_max_delay() {
    let set = Rules::new(RuleAlgorithm::TokenBucket, Strategy::Throttle, 100);
    let mut r = spec("slow", 0, true);
    r.rate = 10; // one every 6 s once the burst of 10 is spent
    r.max_delay = Some(20.0);
    set.add(r).unwrap();
    let who = RequestFacts {
        user: Some("x"),
        ..Default::default()
    };
    let now = 1_000_000_000_000;
    for _ in 0..10 {
        assert_eq!(set.check("slow", &who, now, 1).unwrap().delay, 0);
    }
    // Refused now, each booked the next free slot: 6, 12 and 18 s away, then nothing within
    // 20 s: refused outright (no booking, no wait).
    let delays: Vec<u64> = (0..5)
        .map(|_| set.check("slow", &who, now, 1).unwrap().delay / 1_000_000_000)
        .collect();
    assert_eq!(delays, [6, 12, 18, 0, 0]);
    let refused = set.check("slow", &who, now, 1).unwrap();
    assert!(!refused.decision.allowed && refused.delay == 0);
    // The booked slots are spent: at 18 s the next request waits for the fourth slot.
    let later = set.check("slow", &who, now + 18_000_000_000, 1).unwrap();
    assert_eq!(later.delay, 6_000_000_000);
}

#[test]
fn graceful_marks_refusals_degraded_and_keeps_the_verdict() {
    let set = Rules::new(RuleAlgorithm::FixedWindow, Strategy::Graceful, 100);
    let mut r = spec("soft", 0, true);
    r.rate = 1;
    set.add(r).unwrap();
    let who = RequestFacts::default();
    let first = set.check("soft", &who, 0, 1).unwrap();
    let second = set.check("soft", &who, 0, 1).unwrap();
    assert!(first.decision.allowed && !first.degraded);
    assert!(
        !second.decision.allowed && second.degraded,
        "the verdict stays a refusal"
    );
}

#[test]
fn a_written_out_hash_is_not_a_long_identifiers_budget() {
    fn key_of(id: &str) -> String {
        let facts = RequestFacts {
            user: Some(id),
            ..Default::default()
        };
        Rules::key("r", Scope::PerUser, &facts)
    }
    let hashed = key_of(&"y".repeat(300));
    let hex = hashed.rsplit('|').next().unwrap().to_owned();
    // A client that sends the hex (or the key's tail) gets a budget of its own.
    assert_ne!(key_of(&hex), hashed);
    assert_ne!(key_of(&format!("#|{hex}")), hashed);
}

#[test]
fn queue_gives_max_queued_places_per_window_then_refuses() {
    let set = Rules::new(RuleAlgorithm::TokenBucket, Strategy::Queue, 100);
    let mut s = spec("jobs", 0, true);
    s.rate = 2;
    s.max_queued = Some(3);
    set.add(s).unwrap();
    let who = RequestFacts {
        user: Some("u"),
        ..Default::default()
    };
    let seen: Vec<(bool, bool)> = (0..7)
        .map(|_| {
            let d = set.check("jobs", &who, 0, 1).unwrap();
            (d.decision.allowed, d.queued)
        })
        .collect();
    let mut want = vec![(true, false); 2];
    want.extend([(false, true); 3]);
    want.extend([(false, false); 2]);
    assert_eq!(seen, want);
    // The queue's places come back with the window, as the budget does.
    let later = set.check("jobs", &who, 60 * 1_000_000_000, 1).unwrap();
    assert!(later.decision.allowed && !later.queued);
    let mut zero = spec("none", 0, true);
    zero.max_queued = Some(0);
    assert!(set
        .add(zero)
        .unwrap_err()
        .to_string()
        .contains("max_queued"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// `decide` (selection and decision in one call) answers as `select` then `check` do on a
    /// twin set, request after request.
    #[test]
    fn decide_is_select_then_check(
        requests in proptest::collection::vec((0u8..3, 0u8..3, 0u64..3), 1..40),
    ) {
        let make = || {
            let set = Rules::new(RuleAlgorithm::TokenBucket, Strategy::Throttle, 100);
            let mut d = spec("default", 0, true);
            d.rate = 2;
            set.add(d).unwrap();
            for i in 0..3u8 {
                let mut s = spec(&format!("e{i}"), i64::from(i), true);
                s.rate = 1 + u64::from(i);
                s.endpoints = vec![endpoint(i)];
                s.scope = if i == 1 { Scope::Global } else { Scope::PerUser };
                set.add(s).unwrap();
            }
            set
        };
        let (one, two) = (make(), make());
        let mut now = 0;
        for (e, u, step) in requests {
            now += step * 400_000_000;
            let path = endpoint(e);
            let who = user(u);
            let facts = RequestFacts { endpoint: Some(&path), user: Some(&who), ..Default::default() };
            let got = one.decide(&facts, Some("default"), now, 1).unwrap().unwrap();
            let name = two.select(&facts, Some("default")).unwrap().unwrap();
            let want = two.check(&name, &facts, now, 1).unwrap();
            prop_assert_eq!(got, want);
        }
    }
}
