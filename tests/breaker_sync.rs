//! A breaker shared through Redis adopts an opening for exactly as long as Redis says, counted
//! from the instant it asked, not from when the answer arrived (a slow reply, or a test's manual
//! clock moved meanwhile, must not keep it open longer). Against a real `redis-server` on a free
//! loopback port (skipped, with a message, when `redis-server` is not on PATH).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seawall::breaker::shared::{BreakerSync, Times};
use seawall::breaker::{Breaker, BreakerConfig, Outcome, State, REJECTED};
use seawall::clock::NANOS_PER_SEC;
use seawall::store::redis::runtime;

mod common;
use common::Server;

const T: u64 = 1_700_000_000 * NANOS_PER_SEC;
const RECOVERY: u64 = 10 * NANOS_PER_SEC;

fn breaker() -> Arc<Breaker> {
    let config = BreakerConfig {
        failure_threshold: 3,
        recovery_timeout: RECOVERY,
        jitter: 0.0,
        ..BreakerConfig::default()
    };
    Arc::new(Breaker::new(config, T).expect("a valid config"))
}

#[test]
fn an_adopted_opening_lasts_from_when_it_was_asked() {
    let Some(server) = Server::start() else {
        return;
    };
    let key = "breaker-sync-test".to_owned();
    // Process A's breaker opens on its own at T and tells Redis: open for everyone until T + 10 s.
    let a = breaker();
    for _ in 0..3 {
        let permit = a.try_acquire(T);
        a.record(permit, Outcome::Failure, 0, T);
    }
    assert_eq!(a.state(T), State::Open);
    let at_t: Times = Box::new(|| (Some(T), T));
    let sync_a = BreakerSync::new(
        a,
        server.config(),
        key.clone(),
        Duration::from_secs(3600),
        at_t,
    )
    .expect("a store");
    let open = runtime::handle()
        .block_on(sync_a.sync_once())
        .expect("a reply");
    assert_eq!(open, RECOVERY);

    // Process B asks at T; the answer arrives when its clock reads T + 10 s (a slow reply, or a
    // manual clock advanced meanwhile): the opening it adopts has ended by then.
    let b = breaker();
    let reads = Arc::new(AtomicU64::new(0));
    let counter = reads.clone();
    let moving: Times = Box::new(move || {
        let at = if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            T
        } else {
            T + RECOVERY
        };
        (Some(at), at)
    });
    let sync_b = BreakerSync::new(
        b.clone(),
        server.config(),
        key,
        Duration::from_secs(3600),
        moving,
    )
    .expect("a store");
    let open = runtime::handle()
        .block_on(sync_b.sync_once())
        .expect("a reply");
    assert_eq!(
        open, RECOVERY,
        "Redis: open for 10 s from the instant B asked"
    );
    assert_eq!(
        reads.load(Ordering::SeqCst),
        2,
        "read once to ask, once to adopt"
    );
    assert_eq!(
        b.state(T + RECOVERY),
        State::Closed,
        "not opened for 10 s from the reply"
    );
    assert_ne!(b.try_acquire(T + RECOVERY), REJECTED);
}
