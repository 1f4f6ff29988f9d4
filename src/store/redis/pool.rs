//! Blocking connections for the synchronous calls (`RedisLimiter.hit` and friends): one per
//! thread calling at once, kept for the next call, each call one write and one read on the
//! caller's thread (no thread hop through tokio).

use parking_lot::Mutex;
use redis::{RedisResult, Value};

use super::direct::{connect_error, Direct};
use super::invoke::{load_command, Functions, Invoke};
use super::reply::Answer;
use super::RedisConfig;

/// Whether a call that ended with `r` left its connection in step (a whole reply, even an error
/// reply, was read), so the connection can serve the next call.
fn in_step<T>(r: &RedisResult<T>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => is_reply(e),
    }
}

/// Whether `e` is Redis's error reply (not a failure to get one).
fn is_reply(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    )
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
/// let pong = pool.call(&config, &redis::cmd("PING").get_packed_command());
/// assert_eq!(pong.unwrap(), redis::Value::SimpleString("PONG".into()));
/// ```
#[derive(Default)]
pub struct BlockingPool {
    idle: Mutex<Vec<Direct<()>>>,
    /// Whether the server takes the decision script as a function.
    functions: Functions,
}

impl BlockingPool {
    /// Sends one command (`packed`) on an idle connection (or a new one) and waits for its
    /// reply, within `command_timeout`. The connection goes back to the pool if it is still in
    /// step.
    pub fn call(&self, config: &RedisConfig, packed: &[u8]) -> RedisResult<Value> {
        self.with_connection(config, |conn| conn.call(packed))
    }

    /// Calls the decision script as [`BlockingPool::call`] sends a command: `pack(how)` is the
    /// call, the script named as `how` says. First as a function, or by `EVALSHA` once the
    /// server refused functions; after a refusal that [`Invoke::next`] knows a way around (the
    /// function or the script not loaded, functions refused) it is sent again that way, with a
    /// `FUNCTION LOAD` before it if needed.
    pub fn call_script(
        &self,
        config: &RedisConfig,
        pack: impl Fn(Invoke) -> Vec<u8>,
    ) -> RedisResult<Answer> {
        self.with_connection(config, |conn| self.call_on(conn, pack))
    }

    fn with_connection<T>(
        &self,
        config: &RedisConfig,
        call: impl FnOnce(&mut Direct<()>) -> RedisResult<T>,
    ) -> RedisResult<T> {
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
        let r = call(&mut conn);
        if in_step(&r) {
            self.idle.lock().push(conn);
        }
        r
    }

    /// [`BlockingPool::call_script`] on `conn`: at most four commands (a call, a `FUNCTION
    /// LOAD`, the call again, the call with the script's source).
    fn call_on(
        &self,
        conn: &mut Direct<()>,
        pack: impl Fn(Invoke) -> Vec<u8>,
    ) -> RedisResult<Answer> {
        let mut how = self.functions.first();
        loop {
            if how.needs_load() {
                match conn.call(&load_command().get_packed_command()) {
                    Ok(_) => {}
                    // Refused (an ACL without FUNCTION, a server that cannot load it): the
                    // call after it says how to go on.
                    Err(e) if is_reply(&e) => self.functions.refuse(),
                    Err(e) => return Err(e),
                }
            }
            let r = conn.call_script(&pack(how));
            match &r {
                Err(e) => match how.next(e, &self.functions) {
                    Some(next) => how = next,
                    None => return r,
                },
                Ok(_) => return r,
            }
        }
    }

    /// How many idle connections the pool holds.
    pub fn idle(&self) -> usize {
        self.idle.lock().len()
    }
}
