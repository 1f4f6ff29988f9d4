//! Blocking connections for the synchronous calls (`RedisLimiter.hit` and friends): one per
//! thread calling at once, kept for the next call, each call one write and one read on the
//! caller's thread (no thread hop through tokio).

use parking_lot::Mutex;
use redis::{RedisResult, Value};

use super::direct::{connect_error, Direct};
use super::RedisConfig;

/// Whether `e` is a `NOSCRIPT` reply: Redis restarted or its scripts were flushed.
pub fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// Whether a call that ended with `r` left its connection in step (a whole reply, even an error
/// reply, was read), so the connection can serve the next call.
fn in_step(r: &RedisResult<Value>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => matches!(
            e.kind(),
            redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
        ),
    }
}

/// Idle blocking connections to one server (plain TCP or a Unix socket).
///
/// ```no_run
/// use std::time::Duration;
/// use seawall::store::redis::{pool::BlockingPool, RedisConfig};
///
/// let config = RedisConfig {
///     url: "redis://127.0.0.1:6379/0".into(),
///     connect_timeout: Duration::from_millis(100),
///     command_timeout: Duration::from_millis(100),
/// };
/// let pool = BlockingPool::default();
/// let pong = pool.call(&config, |_| redis::cmd("PING").get_packed_command());
/// assert_eq!(pong.unwrap(), redis::Value::SimpleString("PONG".into()));
/// ```
#[derive(Default)]
pub struct BlockingPool {
    idle: Mutex<Vec<Direct<()>>>,
}

impl BlockingPool {
    /// Sends `pack(true)` on an idle connection (or a new one) and waits for its reply, within
    /// `command_timeout`; after a `NOSCRIPT` reply sends `pack(false)` (the script by its
    /// source) once. The connection goes back to the pool if it is still in step.
    pub fn call(&self, config: &RedisConfig, pack: impl Fn(bool) -> Vec<u8>) -> RedisResult<Value> {
        let conn = {
            let mut idle = self.idle.lock();
            // Redis may have closed idle ones since they were last used, sent what nobody
            // asked for, or this is a forked child and they are the parent's.
            idle.retain(|c| !c.stale_while_idle());
            idle.pop()
        };
        let mut conn = match conn {
            Some(c) => c,
            None => Direct::connect_blocking(
                &config.url,
                config.connect_timeout,
                config.command_timeout,
            )
            .map_err(connect_error)?,
        };
        let mut r = conn.call(&pack(true));
        if matches!(&r, Err(e) if is_noscript(e)) {
            r = conn.call(&pack(false));
        }
        if in_step(&r) {
            self.idle.lock().push(conn);
        }
        r
    }

    /// How many idle connections the pool holds.
    pub fn idle(&self) -> usize {
        self.idle.lock().len()
    }
}
