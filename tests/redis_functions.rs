//! How every transport names the decision script, against real `redis-server`s (skipped, with a
//! message, when `redis-server` is not on PATH): as a Redis 7 function, loaded on first use and
//! again after `FUNCTION FLUSH`; by `EVALSHA` (its source after `NOSCRIPT`) on a server without
//! `FCALL` (renamed away here, as Redis < 7 lacks it) or whose ACL denies it; by its source when
//! the ACL denies `FUNCTION LOAD`. Each decision must come from Redis, with the key's state
//! intact, whichever way the script was named.

use std::time::Duration;

use seawall::store::redis::batcher::Batcher;
use seawall::store::redis::invoke::decide_function;
use seawall::store::redis::pool::BlockingPool;
use seawall::store::redis::script::decide_hash;
use seawall::store::redis::{runtime, RedisConfig, RedisStore};

mod common;
use common::transport::{command, decide, replies, script, settle, submit, Ask, FakeLoop};
use common::Server;

/// `redis-server` arguments for a server without `FCALL`, as before Redis 7.
const WITHOUT_FCALL: &[&str] = &["--rename-command", "FCALL", ""];

/// How many times Redis ran `command` (`INFO commandstats`), 0 if never.
fn calls(server: &Server, command_name: &str) -> u64 {
    let pool = BlockingPool::default();
    let info = match command(&pool, &server.config(), &["INFO", "commandstats"]) {
        redis::Value::VerbatimString { text, .. } => text,
        redis::Value::BulkString(b) => String::from_utf8(b).unwrap(),
        other => panic!("{other:?}"),
    };
    let head = format!("cmdstat_{command_name}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(head.as_str()))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// Whether the server holds the decision script's function library.
fn library_loaded(server: &Server) -> bool {
    let pool = BlockingPool::default();
    let list = command(
        &pool,
        &server.config(),
        &["FUNCTION", "LIST", "LIBRARYNAME", decide_function()],
    );
    matches!(list, redis::Value::Array(libs) if !libs.is_empty())
}

/// Whether the server's script cache holds the decision script (an EVAL of it ran).
fn script_cached(server: &Server) -> bool {
    let pool = BlockingPool::default();
    let r = command(
        &pool,
        &server.config(),
        &["SCRIPT", "EXISTS", decide_hash()],
    );
    r == redis::Value::Array(vec![redis::Value::Int(1)])
}

/// `server`'s config for the ACL user `user` (password `pw`), made with `rules`.
fn as_user(server: &Server, user: &str, rules: &[&str]) -> RedisConfig {
    let pool = BlockingPool::default();
    let mut args = vec!["ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all"];
    args.extend(rules);
    command(&pool, &server.config(), &args);
    let mut cfg = server.config();
    cfg.url = format!("redis://{user}:pw@127.0.0.1:{}/0", server.port);
    cfg
}

#[test]
fn pool_loads_the_function_and_loads_it_again_after_function_flush() {
    let Some(server) = Server::start() else {
        return;
    };
    let cfg = server.config();
    let pool = BlockingPool::default();
    let s = script("5/minute");
    assert!(!library_loaded(&server));
    assert_eq!(
        decide(&pool, &cfg, &s.request("k", 1, true, None)).remaining,
        4
    );
    assert!(library_loaded(&server), "loaded on first use");
    assert_eq!(
        decide(&pool, &cfg, &s.request("k", 1, true, None)).remaining,
        3
    );
    command(&pool, &cfg, &["FUNCTION", "FLUSH"]);
    assert_eq!(
        decide(&pool, &cfg, &s.request("k", 1, true, None)).remaining,
        2,
        "decided by Redis after the flush, the state intact"
    );
    assert!(library_loaded(&server), "loaded again");
    // Each first call after a fresh start or the flush is refused, then made again.
    assert_eq!(calls(&server, "fcall"), 5);
    assert!(!script_cached(&server), "never EVAL");
}

#[test]
fn pool_takes_evalsha_and_the_source_from_a_server_without_fcall() {
    let Some(server) = Server::start_with(WITHOUT_FCALL) else {
        return;
    };
    let cfg = server.config();
    let pool = BlockingPool::default();
    let s = script("5/minute");
    // FCALL is unknown; EVALSHA then gets NOSCRIPT; EVAL decides.
    assert_eq!(
        decide(&pool, &cfg, &s.request("k", 1, true, None)).remaining,
        4
    );
    assert_eq!(
        decide(&pool, &cfg, &s.request("k", 1, true, None)).remaining,
        3
    );
    assert_eq!(calls(&server, "evalsha"), 2, "FCALL is not tried again");
    command(&pool, &cfg, &["SCRIPT", "FLUSH"]);
    assert_eq!(
        decide(&pool, &cfg, &s.request("k", 1, true, None)).remaining,
        2,
        "the state survived, the script was sent again"
    );
    assert_eq!(calls(&server, "eval"), 2);
}

#[test]
fn pool_takes_evalsha_when_the_acl_denies_fcall() {
    let Some(server) = Server::start() else {
        return;
    };
    let cfg = as_user(&server, "nofcall", &["-fcall"]);
    let pool = BlockingPool::default();
    let s = script("5/minute");
    for left in [4, 3, 2] {
        assert_eq!(
            decide(&pool, &cfg, &s.request("k", 1, true, None)).remaining,
            left
        );
    }
    assert_eq!(
        calls(&server, "evalsha"),
        3,
        "one NOSCRIPT, then two decisions"
    );
    assert!(!library_loaded(&server));
}

#[test]
fn pool_sends_the_source_when_the_acl_denies_function_load() {
    let Some(server) = Server::start() else {
        return;
    };
    let cfg = as_user(&server, "noload", &["-function"]);
    let pool = BlockingPool::default();
    let s = script("5/minute");
    // FCALL: not found; FUNCTION LOAD: refused; FCALL again: not found; EVAL decides.
    assert_eq!(
        decide(&pool, &cfg, &s.request("k", 1, true, None)).remaining,
        4
    );
    assert!(!library_loaded(&server));
    assert_eq!(calls(&server, "eval"), 1);
    // From then on by EVALSHA, without trying FCALL again.
    assert_eq!(
        decide(&pool, &cfg, &s.request("k", 1, true, None)).remaining,
        3
    );
    assert_eq!(calls(&server, "evalsha"), 1);
    assert_eq!(calls(&server, "fcall"), 2);
}

#[test]
fn batcher_loads_the_function_again_after_function_flush_with_decisions_in_flight() {
    let Some(server) = Server::start() else {
        return;
    };
    let b = Batcher::new(server.config());
    let lp = FakeLoop::default();
    let s = script("10/minute");
    let ask = |n| Ask {
        n,
        request: s.request("k", 1, true, None),
    };
    let mut done = Vec::new();
    // A fresh server: the first FCALL is refused, the batcher loads the function and calls again.
    submit(&b, &lp, ask(0), &mut done);
    settle(&b, &lp, &mut done, 1);
    assert_eq!(replies(std::mem::take(&mut done))[0].1.remaining, 9);
    assert!(library_loaded(&server));
    command(
        &BlockingPool::default(),
        &server.config(),
        &["FUNCTION", "FLUSH"],
    );
    // One sent at once, three queued behind it and flushed in one call: both are refused and
    // sent again after a load.
    for n in 1..4 {
        submit(&b, &lp, ask(n), &mut done);
    }
    b.flush(&lp, &mut done);
    settle(&b, &lp, &mut done, 3);
    let mut left: Vec<u64> = replies(done).iter().map(|(_, r)| r.remaining).collect();
    left.sort_unstable();
    assert_eq!(
        left,
        [6, 7, 8],
        "every decision made by Redis, each counted once"
    );
    assert!(library_loaded(&server));
    assert!(!script_cached(&server), "never EVAL");
}

#[test]
fn batcher_takes_evalsha_and_the_source_from_a_server_without_fcall() {
    let Some(server) = Server::start_with(WITHOUT_FCALL) else {
        return;
    };
    let b = Batcher::new(server.config());
    let lp = FakeLoop::default();
    let s = script("3/minute");
    for (n, left) in [(0, 2), (1, 1)] {
        let mut done = Vec::new();
        let request = s.request("k", 1, true, None);
        submit(&b, &lp, Ask { n, request }, &mut done);
        settle(&b, &lp, &mut done, 1);
        assert_eq!(replies(done)[0].1.remaining, left);
    }
    // FCALL unknown, EVALSHA: NOSCRIPT, EVAL; then EVALSHA alone.
    assert_eq!(calls(&server, "eval"), 1);
    assert_eq!(calls(&server, "evalsha"), 2);
}

#[test]
fn tokio_store_loads_the_function_again_and_falls_back_without_fcall() {
    for args in [&[][..], WITHOUT_FCALL] {
        let Some(server) = Server::start_with(args) else {
            return;
        };
        let mut cfg = server.config();
        cfg.command_timeout = Duration::from_secs(5);
        let s = script("5/minute");
        let handle = runtime::handle();
        let store = handle
            .block_on(async { RedisStore::new(cfg.clone()) })
            .unwrap();
        let hit = || {
            handle
                .block_on(store.decide(&s.request("k", 1, true, None)))
                .expect("a decision")
                .remaining
        };
        assert_eq!(hit(), 4);
        assert_eq!(hit(), 3);
        command(&BlockingPool::default(), &cfg, &["FUNCTION", "FLUSH"]);
        command(&BlockingPool::default(), &cfg, &["SCRIPT", "FLUSH"]);
        assert_eq!(hit(), 2, "decided by Redis after the flush ({args:?})");
        assert_eq!(library_loaded(&server), args.is_empty());
    }
}
