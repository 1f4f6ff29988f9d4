//! The Redis transport without Python: the blocking pool ([`BlockingPool`]) and the direct
//! path's batcher ([`Batcher`]), against a real `redis-server` started on a free loopback port
//! (skipped, with a message, when `redis-server` is not on PATH) and against fake servers in
//! this file for the faults a real one does not make on demand (silence, a closed socket).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use seawall::limiter::limit::{AlgorithmKind, LimitSet};
use seawall::store::redis::batcher::{Batcher, Outcome, Wake};
use seawall::store::redis::pool::BlockingPool;
use seawall::store::redis::RedisConfig;

mod common;
use common::transport::{
    command, decide, replies, script, settle, submit, Ask, FakeLoop, TestBatcher,
};
use common::{config, Server};

#[test]
fn pool_decides_in_redis_and_keeps_its_connection() {
    let Some(server) = Server::start() else {
        return;
    };
    let cfg = server.config();
    let pool = BlockingPool::default();
    let s = script("2/minute");
    let allowed: Vec<bool> = (0..3)
        .map(|_| decide(&pool, &cfg, &s.request("pool", 1, true, None)).allowed)
        .collect();
    assert_eq!(allowed, [true, true, false]);
    // A test does not count.
    assert!(!decide(&pool, &cfg, &s.request("pool", 1, false, None)).allowed);
    assert_eq!(pool.idle(), 1, "one thread calling: one connection, reused");
}

#[test]
fn pool_drops_connections_redis_closed_while_idle() {
    let Some(server) = Server::start() else {
        return;
    };
    let cfg = server.config();
    let pool = BlockingPool::default();
    let s = script("5/minute");
    decide(&pool, &cfg, &s.request("k", 1, true, None));
    // Kill every other client: the pool's idle connection is closed under it.
    let mut admin = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    admin
        .write_all(b"CLIENT KILL TYPE normal SKIPME yes\r\n")
        .unwrap();
    let mut buf = [0u8; 16];
    let n = admin.read(&mut buf).unwrap();
    assert_eq!(&buf[..2], b":1", "{:?}", String::from_utf8_lossy(&buf[..n]));
    let r = decide(&pool, &cfg, &s.request("k", 1, true, None));
    assert_eq!(r.remaining, 3, "a new connection made the decision");
}

#[test]
fn batcher_sends_what_a_turn_queued_in_one_call_and_settles_in_order() {
    let Some(server) = Server::start() else {
        return;
    };
    let b: TestBatcher = Batcher::new(server.config());
    assert!(b.enabled());
    let lp = FakeLoop::default();
    let s = script("3/minute");
    let ask = |n| Ask {
        n,
        request: s.request("batched", 1, true, None),
    };
    let mut done = Vec::new();
    // The first goes out at once; the next four queue behind it for one flush.
    submit(&b, &lp, ask(0), &mut done);
    for n in 1..5 {
        submit(&b, &lp, ask(n), &mut done);
    }
    let flushes = lp
        .wakes
        .borrow()
        .iter()
        .filter(|(w, _)| *w == Wake::Flush)
        .count();
    assert_eq!(flushes, 1, "one flush per turn of the loop");
    b.flush(&lp, &mut done);
    settle(&b, &lp, &mut done, 5);
    let allowed: Vec<bool> = replies(done).iter().map(|(_, r)| r.allowed).collect();
    assert_eq!(allowed, [true, true, true, false, false]);
    // Nothing in flight any more: the check stands down.
    let mut done = Vec::new();
    b.check(&lp, &mut done);
    assert!(done.is_empty());
}

#[test]
fn batcher_reconnects_when_redis_closed_the_idle_connection() {
    let Some(server) = Server::start() else {
        return;
    };
    let b: TestBatcher = Batcher::new(server.config());
    let lp = FakeLoop::default();
    let s = script("3/minute");
    let ask = |n| Ask {
        n,
        request: s.request("idle", 1, true, None),
    };
    let mut done = Vec::new();
    submit(&b, &lp, ask(0), &mut done);
    settle(&b, &lp, &mut done, 1);
    let pool = BlockingPool::default();
    command(
        &pool,
        &server.config(),
        &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
    );
    // Wait until the kill reached the batcher's socket (readable: end of stream), as a loop
    // would see it.
    let mut p = libc::pollfd {
        fd: lp.fd.get().unwrap(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    assert!(unsafe { libc::poll(&mut p, 1, 10_000) } > 0);
    // The closed connection is found before the send, and a new one made at once: the
    // decision is not lost.
    let mut done = Vec::new();
    submit(&b, &lp, ask(1), &mut done);
    assert!(lp.unwatched.get(), "the old socket is no longer watched");
    settle(&b, &lp, &mut done, 1);
    assert_eq!(
        replies(done)[0].1.remaining,
        1,
        "decided by Redis, not failed"
    );
}

/// A fake server that accepts one connection and hands it to `serve`.
fn fake_server(serve: impl FnOnce(TcpStream) + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((s, _)) = listener.accept() {
            serve(s);
        }
    });
    port
}

#[test]
fn batcher_fails_every_decision_when_the_connection_closes() {
    let port = fake_server(|mut s| {
        // Read the first command, then hang up without a reply.
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
    });
    let b: TestBatcher = Batcher::new(config(port, Duration::from_secs(5)));
    let lp = FakeLoop::default();
    let s = script("3/minute");
    let mut done = Vec::new();
    for n in 0..3 {
        submit(
            &b,
            &lp,
            Ask {
                n,
                request: s.request("k", 1, true, None),
            },
            &mut done,
        );
    }
    settle(&b, &lp, &mut done, 3);
    assert!(
        lp.unwatched.get(),
        "the loop stops watching a closed socket"
    );
    for d in done {
        match d.outcome {
            Outcome::Reply(Err(e)) => assert!(e.to_string().contains("closed"), "{e}"),
            other => panic!("decision {} should fail: {other:?}", d.item.n),
        }
    }
}

#[test]
fn batcher_times_out_a_silent_server() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let port = fake_server(move |s| {
        // Keep the connection open and say nothing until the test ends.
        let _ = rx.recv();
        drop(s);
    });
    // A zero command_timeout: the first check finds the oldest decision overdue.
    let b: TestBatcher = Batcher::new(config(port, Duration::ZERO));
    let lp = FakeLoop::default();
    let s = script("3/minute");
    let mut done = Vec::new();
    submit(
        &b,
        &lp,
        Ask {
            n: 0,
            request: s.request("k", 1, true, None),
        },
        &mut done,
    );
    assert!(lp
        .wakes
        .borrow()
        .contains(&(Wake::Check, Some(Duration::ZERO))));
    b.check(&lp, &mut done);
    assert_eq!(done.len(), 1);
    match &done[0].outcome {
        Outcome::Reply(Err(e)) => assert!(e.to_string().contains("command_timeout"), "{e}"),
        other => panic!("should time out: {other:?}"),
    }
    assert!(lp.unwatched.get());
    let _ = tx.send(());
}

#[test]
fn batcher_gives_back_what_it_cannot_send_directly() {
    let b: TestBatcher = Batcher::new(RedisConfig {
        url: "rediss://127.0.0.1:1/0".into(),
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(1),
    });
    assert!(!b.enabled(), "TLS takes the tokio path");
    let s = script("3/minute");
    let mut done = Vec::new();
    let r = b.submit(
        &FakeLoop::default(),
        1,
        Ask {
            n: 7,
            request: s.request("k", 1, true, None),
        },
        &mut done,
    );
    assert_eq!(r.err().map(|a| a.n), Some(7));
    assert!(done.is_empty());
}

#[test]
fn redis_limiter_decides_over_the_blocking_pool_and_falls_back_when_redis_is_gone() {
    use seawall::breaker::BreakerConfig;
    use seawall::limiter::redis_failure::{Fallback, OnError};
    use seawall::limiter::redis_limiter::{RedisLimiter, RedisLimiterConfig};

    let Some(server) = Server::start() else {
        return;
    };
    let limits = LimitSet::parse("2/minute", AlgorithmKind::FixedWindow).unwrap();
    let config = RedisLimiterConfig {
        redis: server.config(),
        prefix: "pool-test:".into(),
        on_error: OnError::Deny,
        max_local_keys: 16,
        log_interval: 0,
        breaker: BreakerConfig::default(),
    };
    let limiter = RedisLimiter::new(limits, config, 0).unwrap();
    let pool = BlockingPool::default();
    let decide = || {
        let pending = match limiter.begin("k", 1, true, None, 0).unwrap() {
            Ok(p) => p,
            Err(d) => return d,
        };
        limiter.finish_blocking(&pool, pending).unwrap()
    };
    let first = decide();
    assert!(first.decision.decision.allowed);
    assert_eq!(first.fallback, Fallback::None);
    assert!(decide().decision.decision.allowed);
    assert!(
        !decide().decision.decision.allowed,
        "the third in a minute is refused by Redis"
    );
    drop(server);
    let gone = decide();
    assert_eq!(
        gone.fallback,
        Fallback::Error,
        "Redis is gone: on_error decides"
    );
    assert!(!gone.decision.decision.allowed, "on_error=deny");
    assert_eq!(
        limiter
            .stats()
            .errors
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn batcher_reads_replies_that_come_in_pieces_whoever_parses_them() {
    // An error reply and a reply of another shape (redis-rs's parser), then the script's reply
    // (read directly), each written in pieces with pauses between them. The second one's
    // second piece alone would look like the script's reply: it is the parser's still.
    let decision = b"*1\r\n*8\r\n:1\r\n:3\r\n:2\r\n:20000000\r\n:0\r\n:0\r\n:20000000\r\n:7\r\n";
    let port = fake_server(move |mut s| {
        let pieces: [&[&[u8]]; 3] = [
            &[b"-ERR some", b" thing", b"\r\n"],
            &[b"*1\r\n*1\r\n", decision],
            &[
                &decision[..3],
                &decision[3..11],
                &decision[11..40],
                &decision[40..],
            ],
        ];
        for reply in pieces {
            let mut buf = [0u8; 4096];
            if s.read(&mut buf).unwrap_or(0) == 0 {
                return;
            }
            for piece in reply {
                s.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let mut buf = [0u8; 16];
        let _ = s.read(&mut buf);
    });
    let b: TestBatcher = Batcher::new(config(port, Duration::from_secs(5)));
    let lp = FakeLoop::default();
    let s = script("3/minute");
    let ask = |n| Ask {
        n,
        request: s.request("k", 1, true, None),
    };
    let mut done = Vec::new();
    submit(&b, &lp, ask(0), &mut done);
    settle(&b, &lp, &mut done, 1);
    match &done[0].outcome {
        Outcome::Reply(Err(e)) => assert!(e.to_string().contains("some thing"), "{e}"),
        other => panic!("the error reply, whole: {other:?}"),
    }
    let mut done = Vec::new();
    submit(&b, &lp, ask(1), &mut done);
    settle(&b, &lp, &mut done, 1);
    match &done[0].outcome {
        Outcome::Reply(Err(e)) => assert!(e.to_string().contains("unexpected reply"), "{e}"),
        other => panic!("not a decision: {other:?}"),
    }
    let mut done = Vec::new();
    submit(&b, &lp, ask(2), &mut done);
    settle(&b, &lp, &mut done, 1);
    let r = replies(done)[0].1;
    assert_eq!((r.allowed, r.remaining, r.now_us), (true, 2, 7));
}
