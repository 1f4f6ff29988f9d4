//! An admitted in-memory HTTP decision for a client already seen allocates nothing: counted by
//! this test binary's global allocator, on this thread only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use seawall::http::client_ip::Proxies;
use seawall::http::{HeaderStyle, HttpPolicy, Outcome, RequestView, Routes, Rule};
use seawall::limiter::limit::{AlgorithmKind, LimitSet};
use seawall::limiter::memory_limiter::Limiter;
use seawall::metrics::top_limited::TopLimited;

/// The system allocator, counting this thread's allocations.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to `System` unchanged; counting touches only a const-initialized
// thread-local, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn set(text: &str) -> LimitSet {
    LimitSet::parse(text, AlgorithmKind::Gcra).unwrap()
}

fn policy(key: &str, headers: HeaderStyle, global: bool) -> HttpPolicy {
    let rules = vec![Rule::new("/login", set("1000000/minute"), None, None).unwrap()];
    HttpPolicy {
        key_source: key.parse().unwrap(),
        proxies: Proxies::parse(&["10.0.0.0/8"]).unwrap(),
        exempt_ips: Proxies::parse(&["192.0.2.0/24"]).unwrap(),
        exempt_clients: vec!["someone-else".into()],
        global: global.then(|| Limiter::new(set("1000000/second"), 10)),
        headers,
        top_limited: TopLimited::new(10),
        ..HttpPolicy::new(Routes::new(rules, Some(set("1000000/second")), 1000))
    }
}

/// Each header style, and the allocations of a decision under it: `both`'s five headers are
/// one more than the list holds inline (each value still is).
const STYLES: [(HeaderStyle, u64); 4] = [
    (HeaderStyle::None, 0),
    (HeaderStyle::XRateLimit, 0),
    (HeaderStyle::Draft, 0),
    (HeaderStyle::Both, 1),
];

/// Decisions [`steady_allocations`] counts.
const DECISIONS: u64 = 99;

/// Decides `req` once (the client's first request may allocate its state), then counts what
/// the next ones allocate.
fn steady_allocations(p: &HttpPolicy, req: &RequestView<'_>) -> u64 {
    let first = p.decide(req, 0, None, None).unwrap();
    assert!(!matches!(first, Outcome::Limited(..)), "{first:?}");
    allocations(|| {
        for i in 1..=DECISIONS {
            let outcome = p.decide(req, i, None, None).unwrap();
            assert!(!matches!(outcome, Outcome::Limited(..)));
        }
    })
}

fn request<'a>(
    peer: &'a str,
    path: &'a str,
    headers: &'a [(&'a [u8], &'a [u8])],
) -> RequestView<'a> {
    RequestView {
        peer: Some(peer),
        headers,
        path,
        method: "GET",
        query: b"",
    }
}

#[test]
fn address_keys_allocate_nothing() {
    let xff: &[(&[u8], &[u8])] = &[(b"x-forwarded-for", b"203.0.113.9, 10.0.0.2")];
    for (style, each) in STYLES {
        for global in [false, true] {
            let p = policy("ip", style, global);
            for peer in ["203.0.113.7", "2001:db8:1:2::9", "::ffff:198.51.100.4"] {
                for path in ["/", "/login"] {
                    let req = request(peer, path, &[]);
                    let n = steady_allocations(&p, &req);
                    assert_eq!(n, each * DECISIONS, "{style:?} {peer} {path}");
                }
            }
            // Behind a trusted proxy.
            let req = request("10.0.0.1", "/", xff);
            let n = steady_allocations(&p, &req);
            assert_eq!(n, each * DECISIONS, "{style:?} via a proxy");
        }
    }
}

#[test]
fn short_header_keys_allocate_nothing() {
    let h: &[(&[u8], &[u8])] = &[(b"x-client-id", b"tenant-42")];
    for (style, each) in STYLES {
        let p = policy("header:x-client-id", style, false);
        let req = request("203.0.113.7", "/", h);
        assert_eq!(p.key_for(&req, None), "header:tenant-42");
        assert_eq!(steady_allocations(&p, &req), each * DECISIONS, "{style:?}");
    }
}

#[test]
fn the_counter_counts() {
    // Not a test that cannot fail: a key too long for the stack is counted.
    let long = "k".repeat(200);
    let h: &[(&[u8], &[u8])] = &[(b"x-client-id", long.as_bytes())];
    let p = policy("header:x-client-id", HeaderStyle::None, false);
    assert!(steady_allocations(&p, &request("203.0.113.7", "/", h)) > 0);
}
