//! The host store against the memory limiter (the same decisions, proven by property tests), and
//! its promises across real processes: exactly the limit admitted by four processes hammering
//! one key, and no key admitting more after workers are killed with SIGKILL mid-decision.
//!
//! The worker processes are this test binary, started again with `SEAWALL_HOST_WORKER` set: the
//! test `worker` then runs as one worker instead of as a test.

use std::io::Write;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use seawall::clock::NANOS_PER_SEC;
use seawall::limiter::limit::{AlgorithmKind, LimitSet};
use seawall::limiter::memory_limiter::Limiter;
use seawall::store::host::{segment, HostLimiter};

/// A segment name of this test's own, removed when dropped.
struct Name(String);

impl Name {
    fn new(what: &str) -> Self {
        let n = Name(format!("test-{what}-{}", std::process::id()));
        let _ = segment::remove(&n.0);
        n
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = segment::remove(&self.0);
    }
}

fn set(text: &str, kind: AlgorithmKind) -> LimitSet {
    LimitSet::parse(text, kind).unwrap()
}

const KINDS: [AlgorithmKind; 5] = [
    AlgorithmKind::Gcra,
    AlgorithmKind::TokenBucket,
    AlgorithmKind::LeakyBucket,
    AlgorithmKind::FixedWindow,
    AlgorithmKind::SlidingCounter,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every decision (allowed, limit, remaining, reset and retry times, binding limit) equals the
    /// memory limiter's, for one and two limits of every algorithm the host store takes.
    #[test]
    fn host_decides_as_memory_does(
        kind in 0usize..KINDS.len(),
        two in any::<bool>(),
        steps in proptest::collection::vec(
            (0u8..4, 0u64..3_000_000_000, 1u64..3, any::<bool>()), 1..80
        ),
    ) {
        let kind = KINDS[kind];
        let text = if two { "5/second; 20/minute" } else { "7/10 seconds" };
        let limits = set(text, kind);
        let name = Name::new(&format!("prop-{}", kind.name()));
        let host = HostLimiter::open(&name.0, limits.clone(), 100).unwrap();
        let memory = Limiter::new(limits, 100);
        let mut now = 1_000 * NANOS_PER_SEC;
        for (key, advance, cost, commit) in steps {
            now += advance;
            let key = format!("k{key}");
            let (a, b) = if commit {
                (host.hit(&key, now, cost), memory.hit(&key, now, cost))
            } else {
                (host.test(&key, now, cost), memory.test(&key, now, cost))
            };
            prop_assert_eq!(a, b);
        }
    }
}

#[test]
fn threads_on_one_key_admit_exactly_the_limit() {
    for kind in KINDS {
        let name = Name::new(&format!("threads-{}", kind.name()));
        let limits = set("300/hour", kind);
        let admitted: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let limits = limits.clone();
                    let name = &name.0;
                    s.spawn(move || {
                        let host = HostLimiter::open(name, limits, 100).unwrap();
                        (0..400)
                            .filter(|_| host.hit("hot", NANOS_PER_SEC, 1).unwrap().decision.allowed)
                            .count() as u64
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 300, "{}", kind.name());
    }
}

#[test]
fn a_full_table_evicts_fresh_keys_first_and_stays_bounded() {
    let name = Name::new("evict");
    let host = HostLimiter::open(&name.0, set("1/second", AlgorithmKind::Gcra), 10).unwrap();
    let capacity = host.capacity();
    let now = 1_000 * NANOS_PER_SEC;
    for i in 0..capacity * 3 {
        host.hit(&format!("k{i}"), now, 1).unwrap();
    }
    assert!(host.len() <= capacity);
    // A second later every key is fresh again: new keys take their places, nothing is lost.
    let later = now + 2 * NANOS_PER_SEC;
    assert!(host.hit("spent", later, 1).unwrap().decision.allowed);
    assert!(!host.hit("spent", later, 1).unwrap().decision.allowed);
    assert_eq!(host.bytes(), 16384 + capacity * 72);
}

#[test]
fn opening_checks_name_version_capacity_and_limits() {
    let name = Name::new("checks");
    let limits = set("5/minute", AlgorithmKind::Gcra);
    let _first = HostLimiter::open(&name.0, limits.clone(), 1000).unwrap();
    let other_size = HostLimiter::open(&name.0, limits.clone(), 100_000);
    assert!(other_size
        .err()
        .unwrap()
        .to_string()
        .starts_with("max_keys"));
    for bad in ["", "a/b", "..", ".hidden", "x y"] {
        let e = HostLimiter::open(bad, limits.clone(), 10).err().unwrap();
        assert!(e.to_string().starts_with("store"), "{bad:?}: {e}");
    }
    // A registry of at most 96 limit sets per segment.
    let crowded = Name::new("crowded");
    for n in 1..=96 {
        let limits = set(&format!("{n}/minute"), AlgorithmKind::Gcra);
        HostLimiter::open(&crowded.0, limits, 10).unwrap();
    }
    let e = HostLimiter::open(&crowded.0, set("97/minute", AlgorithmKind::Gcra), 10);
    assert!(e
        .err()
        .unwrap()
        .to_string()
        .contains("96 different limit sets"));
    let log = HostLimiter::open(&name.0, set("5/minute", AlgorithmKind::SlidingLog), 10);
    assert!(log.err().unwrap().to_string().starts_with("algorithm"));
    // A file of another kind under the name is refused, never read as counts.
    let foreign = Name::new("foreign");
    std::fs::write(segment::path_of(&foreign.0).unwrap(), vec![7u8; 8192]).unwrap();
    let e = HostLimiter::open(&foreign.0, limits, 10).err().unwrap();
    assert!(e.to_string().contains("not a seawall segment"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Real processes

const WORKER: &str = "SEAWALL_HOST_WORKER";
const LIMIT: u64 = 20_000;

/// Runs as a worker when started by [`spawn`]: hammers one key, appending a line to its file for
/// each admitted decision, until `attempts` are made.
#[test]
fn worker() {
    let Ok(spec) = std::env::var(WORKER) else {
        return;
    };
    let mut parts = spec.split(',');
    let (name, out, attempts) = (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().parse::<u64>().unwrap(),
    );
    let limits = set(&format!("{LIMIT}/hour"), AlgorithmKind::Gcra);
    let host = HostLimiter::open(&name, limits, 100).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(out)
        .unwrap();
    for _ in 0..attempts {
        if host.hit("hot", NANOS_PER_SEC, 1).unwrap().decision.allowed {
            file.write_all(b"a\n").unwrap();
        }
    }
}

fn spawn(name: &str, out: &std::path::Path, attempts: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "worker", "--nocapture", "--test-threads=1"])
        .env(WORKER, format!("{name},{},{attempts}", out.display()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn admitted(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap().len() as u64 / 2)
        .sum()
}

#[test]
fn four_processes_on_one_key_admit_exactly_the_limit() {
    let name = Name::new("procs");
    let dir = std::env::temp_dir().join(format!("seawall-host-procs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut children: Vec<Child> = (0..4)
        .map(|i| spawn(&name.0, &dir.join(format!("w{i}")), LIMIT))
        .collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(admitted(&dir), LIMIT);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn workers_killed_mid_decision_never_let_a_key_admit_more() {
    let name = Name::new("kill");
    let dir = std::env::temp_dir().join(format!("seawall-host-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut next = 0;
    let mut start = |children: &mut Vec<Child>, attempts: u64| {
        children.push(spawn(&name.0, &dir.join(format!("w{next}")), attempts));
        next += 1;
    };
    let mut children = Vec::new();
    for _ in 0..4 {
        start(&mut children, 10 * LIMIT);
    }
    // Kill a worker every millisecond or so, at whatever point it is in, and start another:
    // while the key has budget left, and on after (refusals take the slot's lock too).
    let mut kills = 0;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let deadline = Instant::now() + Duration::from_secs(20);
    while kills < 60 && Instant::now() < deadline {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_micros(200 + rng % 1500));
        let victim = (rng % children.len() as u64) as usize;
        let mut c = children.swap_remove(victim);
        let _ = c.kill(); // SIGKILL
        let _ = c.wait();
        kills += 1;
        start(&mut children, 10 * LIMIT);
    }
    // Then the survivors spend what is left (a worker stuck on a lock its killed holder kept
    // would never end: bounded, and a failure).
    let deadline = Instant::now() + Duration::from_secs(60);
    for mut c in children {
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success());
                break;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("a worker did not finish: stuck on a lock?");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let got = admitted(&dir);
    eprintln!("{kills} workers killed, {got} of {LIMIT} admitted");
    assert!(kills >= 20, "the test killed {kills} workers");
    // A killed worker loses at most its one decision in flight (counted in the store, not yet
    // written to its file): never more admitted than the limit, at most one short per kill.
    assert!(got <= LIMIT, "{got} admitted after {kills} kills");
    assert!(got + kills >= LIMIT, "{got} admitted after {kills} kills");
    // And the table is usable: a new process finds the key spent, a new key fresh.
    let limits = set(&format!("{LIMIT}/hour"), AlgorithmKind::Gcra);
    let host = HostLimiter::open(&name.0, limits, 100).unwrap();
    assert_eq!(
        host.test("hot", NANOS_PER_SEC, 1)
            .unwrap()
            .decision
            .remaining,
        0
    );
    assert!(
        host.hit("other", NANOS_PER_SEC, 1)
            .unwrap()
            .decision
            .allowed
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Two host limiters decided as one answer as two memory limiters do (`hit_with`).
    #[test]
    fn host_hit_with_decides_as_memory_does(
        steps in proptest::collection::vec((0u8..3, 0u64..3_000_000_000), 1..60),
    ) {
        let (n1, n2) = (Name::new("with-a"), Name::new("with-b"));
        let tool = set("3/10 seconds", AlgorithmKind::Gcra);
        let global = set("5/10 seconds", AlgorithmKind::FixedWindow);
        let (ht, hg) = (
            HostLimiter::open(&n1.0, tool.clone(), 100).unwrap(),
            HostLimiter::open(&n2.0, global.clone(), 100).unwrap(),
        );
        let (mt, mg) = (Limiter::new(tool, 100), Limiter::new(global, 100));
        let mut now = 1_000 * NANOS_PER_SEC;
        for (key, advance) in steps {
            now += advance;
            let key = format!("c{key}");
            let a = ht.hit_with(&key, &hg, "*", now, 1).unwrap();
            let b = mt.hit_with(&key, &mg, "*", now, 1).unwrap();
            prop_assert_eq!(a, b);
        }
    }
}

#[test]
fn a_shared_breaker_record_trips_on_failures_in_a_row_and_on_the_rate() {
    use seawall::breaker::host_record::{remove_all, HostRecord, Thresholds};
    use seawall::breaker::Delta;

    let name = Name::new("breaker");
    let t = Thresholds {
        failure_threshold: 3,
        failure_rate: Some(0.5),
        slow_rate: None,
        minimum_calls: 10,
        window_us: 60_000_000,
        recovery_us: 30_000_000,
    };
    let delta = |calls, failures, trailing, success| Delta {
        calls,
        failures,
        slow: 0,
        trailing_failures: trailing,
        success_seen: success,
        opened_for: None,
        closed: false,
    };
    let now = 1_000_000_000;
    let (a, b) = (
        HostRecord::open(&name.0, "k").unwrap(),
        HostRecord::open(&name.0, "k").unwrap(),
    );
    assert_eq!(a.merge(&delta(2, 2, 2, false), &t, now), [0, 2, 2, 2]);
    // The third failure in a row, from another process: open for everyone, counts afresh.
    assert_eq!(
        b.merge(&delta(1, 1, 1, false), &t, now + 1),
        [30_000_000, 0, 0, 0]
    );
    assert_eq!(a.merge(&delta(0, 0, 0, false), &t, now + 2)[0], 29_999_999);
    // After it: calls with successes, then a failure rate of half over ten calls trips it.
    let later = now + 40_000_000;
    assert_eq!(a.merge(&delta(6, 2, 0, true), &t, later), [0, 0, 6, 2]);
    assert_eq!(b.merge(&delta(4, 3, 1, true), &t, later + 1)[0], 30_000_000);
    // The window forgets old buckets.
    let much_later = later + 200_000_000;
    assert_eq!(a.merge(&delta(1, 0, 0, true), &t, much_later), [0, 0, 1, 0]);
    assert_eq!(remove_all(&name.0).unwrap(), 1);
}

/// Every slot's lock word set as if a process that is gone held it (the state left as it was,
/// or torn), in the segment's file mapped by the test: how a `kill -9` mid-decision leaves it.
fn leave_locked_by_a_dead_process(host: &HostLimiter, tear_state: bool) {
    let dead = {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(host.path())
        .unwrap();
    let mut map = unsafe { memmap2::MmapMut::map_mut(&file).unwrap() };
    let capacity = host.capacity();
    let words = unsafe {
        std::slice::from_raw_parts_mut(map.as_mut_ptr().add(16384) as *mut u64, capacity * 9)
    };
    // Taken "in the future": only the holder's death, not its age, can free it.
    let since = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 100_000)
        & 0xffff_ffff;
    for i in 0..capacity {
        let slot = capacity + i * 8;
        words[slot] = (u64::from(dead) << 32) | since;
        if tear_state && words[i] != 0 {
            // Half of a write in the state in use (a compact state is in one of two copies
            // of three words, as bit 46 of the check word says): the checksum no longer matches.
            let check = words[slot + 1];
            let copy = if check & (1 << 47) != 0 && check & (1 << 46) != 0 {
                3
            } else {
                0
            };
            words[slot + 2 + copy + 1] ^= 0x5555;
        }
    }
    map.flush().unwrap();
}

/// `f` on another thread, which must end (a hang detector far above any decision's time).
fn ends<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(60))
        .expect("a lock held by a dead process was never taken over")
}

#[test]
fn a_lock_whose_holder_died_is_taken_over_and_a_torn_state_spends_the_key() {
    let name = Name::new("dead-holder");
    let limits = set("10/hour", AlgorithmKind::Gcra);
    let host = HostLimiter::open(&name.0, limits.clone(), 100).unwrap();
    assert!(host.hit("hot", NANOS_PER_SEC, 1).unwrap().decision.allowed);
    leave_locked_by_a_dead_process(&host, false);
    let again = HostLimiter::open(&name.0, limits.clone(), 100).unwrap();
    let d = ends(move || again.hit("hot", NANOS_PER_SEC, 1).unwrap().decision);
    assert!(
        d.allowed && d.remaining == 8,
        "the state was whole: kept ({d:?})"
    );
    leave_locked_by_a_dead_process(&host, true);
    let again = HostLimiter::open(&name.0, limits, 100).unwrap();
    let d = ends(move || again.hit("hot", NANOS_PER_SEC, 1).unwrap().decision);
    assert!(
        !d.allowed && d.remaining == 0,
        "a torn state is spent, not trusted ({d:?})"
    );
}
