//! What the transport tests share: a limit script, a command or a decision over the blocking
//! pool, and a fake event loop played by the test to drive the direct path's batcher.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use seawall::limiter::limit::{AlgorithmKind, LimitSet};
use seawall::store::redis::batcher::{Batcher, Done, Item, LoopOps, Outcome, Wake};
use seawall::store::redis::pool::BlockingPool;
use seawall::store::redis::reply::Answer;
use seawall::store::redis::script::{packed_batch, LimitScript, Reply, Request};
use seawall::store::redis::RedisConfig;

pub fn script(limits: &str) -> LimitScript {
    let limits = LimitSet::parse(limits, AlgorithmKind::FixedWindow).expect("valid limits");
    LimitScript::new(&limits, "transport-test:").expect("encodable limits")
}

/// One command sent on the pool (`SCRIPT FLUSH`, `CLIENT KILL` …).
pub fn command(pool: &BlockingPool, cfg: &RedisConfig, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    pool.call(cfg, &cmd.get_packed_command()).expect("a reply")
}

pub fn decide(pool: &BlockingPool, cfg: &RedisConfig, request: &Request) -> Reply {
    let batch = [request];
    let replies = pool
        .call_script(cfg, |how| packed_batch(&batch, how))
        .and_then(Answer::decisions)
        .expect("a decision");
    assert_eq!(replies.len(), 1);
    replies[0]
}

/// A decision for the batcher: its number and its script call.
pub struct Ask {
    pub n: usize,
    pub request: Request,
}

impl Item for Ask {
    fn request(&self) -> &Request {
        &self.request
    }
}

/// An event loop that records what the batcher asks of it; the test plays the loop.
#[derive(Default)]
pub struct FakeLoop {
    pub fd: Cell<Option<RawFd>>,
    pub unwatched: Cell<bool>,
    pub wakes: RefCell<Vec<(Wake, Option<Duration>)>>,
}

impl LoopOps<Ask> for FakeLoop {
    type Loop = ();

    fn loop_of(&self, _: &Ask) -> Option<()> {
        Some(())
    }

    fn watch(&self, _: &(), fd: RawFd) -> bool {
        self.fd.set(Some(fd));
        true
    }

    fn unwatch(&self, _: &(), fd: RawFd) {
        assert_eq!(self.fd.get(), Some(fd));
        self.unwatched.set(true);
    }

    fn schedule(&self, _: &(), wake: Wake, delay: Option<Duration>) -> bool {
        self.wakes.borrow_mut().push((wake, delay));
        true
    }
}

pub type TestBatcher = Arc<Batcher<Ask, ()>>;

/// Submits `ask`, waiting for the background connection if it is still being made.
pub fn submit(b: &TestBatcher, lp: &FakeLoop, mut ask: Ask, done: &mut Done<Ask>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match b.submit(lp, 1, ask, done) {
            Ok(()) => return,
            Err(back) => ask = back,
        }
        assert!(Instant::now() < deadline, "the batcher never connected");
        std::thread::yield_now();
    }
}

/// Plays the loop until `n` decisions are settled: waits for the socket to be readable, then
/// lets the batcher read.
pub fn settle(b: &TestBatcher, lp: &FakeLoop, done: &mut Done<Ask>, n: usize) {
    let fd = lp.fd.get().expect("a watched socket");
    while done.len() < n {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut p, 1, 10_000) };
        assert!(ready > 0, "no reply within 10 s");
        b.on_readable(lp, done);
    }
}

pub fn replies(done: Done<Ask>) -> Vec<(usize, Reply)> {
    let mut out: Vec<(usize, Reply)> = done
        .into_iter()
        .map(|s| match s.outcome {
            Outcome::Reply(Ok(r)) => (s.item.n, r),
            other => panic!("decision {} failed: {other:?}", s.item.n),
        })
        .collect();
    out.sort_by_key(|(n, _)| *n);
    out
}
