//! The Redis store: limiter state in Redis, shared by every worker and host that names the same
//! server, changed only by one Lua script (`decide.lua`, spoken by [`script`]) so that each
//! decision is atomic.
//!
//! The script runs the transitions of `src/algorithm/` in integer microseconds, for all of a key's
//! limits at once, all or nothing, on the server's own clock. Three transports send it, each
//! calling it as a Redis 7 function (loaded again after a restart or a `FUNCTION FLUSH`), or by
//! `EVALSHA` and its source on a server that refuses functions ([`invoke::Invoke`]):
//! [`RedisStore`] here (redis-rs on tokio: TLS, Cluster, Sentinel; one multiplexed
//! connection carries every concurrent decision), [`pool`] (blocking connections for synchronous
//! callers) and [`batcher`] (one connection driven by the caller's event loop, what one turn of
//! the loop asks for sent in one call; its sockets are [`direct`]).
//!
//! Connections are made lazily and made again after a failure, a timeout or a reply of the wrong
//! kind (requests and replies pair by their order on the wire), so a limiter built while Redis
//! is down works as soon as it is back. What to do meanwhile is policy, decided by the caller
//! ([`crate::limiter::redis_limiter`]).

pub mod batcher;
pub mod direct;
pub mod invoke;
pub mod pool;
pub mod process;
pub mod reply;
mod resp;
pub mod round_trips;
pub mod runtime;
pub mod script;
pub mod url;

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisError, RedisResult, Script, Value};

use crate::error::Error;
use invoke::{load_command, Functions};
use reply::{parse_reply, unexpected, Reply};
use script::{batch_command, Request};
use url::Target;

/// How to reach Redis, and how long to wait for it.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// A store URL (see [`url`]).
    pub url: String,
    /// Longest wait for a new connection.
    pub connect_timeout: Duration,
    /// Longest wait for one command's reply.
    pub command_timeout: Duration,
}

/// A connection made on first use and made again after it breaks, times out, or answers
/// what was not asked: a multiplexed connection pairs replies with requests by their order,
/// so after a lost or an extra reply every later reply would go to the wrong request.
struct Lazy {
    target: Target,
    /// One server: its client, checked when the store is made.
    client: Option<redis::Client>,
    /// The connection, numbered: a call that failed on connection `n` forgets only `n`, not
    /// one made since by another call.
    conn: tokio::sync::Mutex<Option<(u64, Conn)>>,
    made: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
enum Conn {
    Cluster(ClusterConnection),
    Single(MultiplexedConnection),
}

/// A connection to one Redis deployment, with the decision script.
pub struct RedisStore {
    backend: Lazy,
    /// Whether the deployment takes the decision script as a function.
    functions: Functions,
    config: RedisConfig,
    /// Calls under way, to tell a connection found closed while idle from one that broke
    /// under calls.
    in_flight: std::sync::atomic::AtomicUsize,
}

/// Counts a call in flight while it lives (also when its future is dropped by a timeout).
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether `e` says the connection was closed (not a timeout, not a reply).
fn closed(e: &RedisError) -> bool {
    e.is_connection_dropped() && !e.is_timeout()
}

fn client_error(e: RedisError) -> Error {
    Error::invalid("store", format!("is not a usable Redis URL: {e}"))
}

impl RedisStore {
    /// Parses the URL and prepares the connection; connects on first use. Must be called
    /// inside the tokio runtime that will drive it (see [`runtime::handle`]).
    pub fn new(config: RedisConfig) -> Result<Self, Error> {
        runtime::install_crypto();
        let target = url::parse(&config.url)?;
        let client = match &target {
            Target::Single(u) => Some(redis::Client::open(u.as_str()).map_err(client_error)?),
            _ => None,
        };
        let backend = Lazy {
            target,
            client,
            conn: tokio::sync::Mutex::new(None),
            made: std::sync::atomic::AtomicU64::new(0),
        };
        Ok(RedisStore {
            backend,
            functions: Functions::default(),
            config,
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    async fn connect(&self, target: &Target) -> RedisResult<Conn> {
        let timeout = self.config.connect_timeout;
        let command = self.config.command_timeout;
        match target {
            Target::Single(_) => {
                let Some(client) = &self.backend.client else {
                    return Err((redis::ErrorKind::Client, "no client").into());
                };
                let cfg = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(command));
                Ok(Conn::Single(
                    client
                        .get_multiplexed_async_connection_with_config(&cfg)
                        .await?,
                ))
            }
            Target::Cluster {
                nodes,
                username,
                password,
                tls,
            } => {
                let mut b = redis::cluster::ClusterClient::builder(nodes.clone())
                    .connection_timeout(timeout)
                    .response_timeout(command);
                if let Some(u) = username {
                    b = b.username(u.clone());
                }
                if let Some(p) = password {
                    b = b.password(p.clone());
                }
                if *tls {
                    b = b.tls(redis::TlsMode::Secure);
                }
                let client = b.build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
            Target::Sentinel {
                sentinels,
                service,
                db,
                username,
                password,
                sentinel_password,
                tls,
            } => {
                let mut info = redis::RedisConnectionInfo::default().set_db(*db);
                if let Some(u) = username {
                    info = info.set_username(u);
                }
                if let Some(p) = password {
                    info = info.set_password(p);
                }
                let mut node = redis::sentinel::SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(info);
                if *tls {
                    node = node.set_tls_mode(redis::TlsMode::Secure);
                }
                let sentinels: Vec<redis::ConnectionInfo> = sentinels
                    .iter()
                    .map(|s| {
                        let info: redis::ConnectionInfo =
                            redis::IntoConnectionInfo::into_connection_info(s.as_str())?;
                        Ok(match sentinel_password {
                            Some(p) => {
                                let redis_info = info.redis_settings().clone().set_password(p);
                                info.set_redis_settings(redis_info)
                            }
                            None => info,
                        })
                    })
                    .collect::<RedisResult<_>>()?;
                let mut client = redis::sentinel::SentinelClient::build(
                    sentinels,
                    service.clone(),
                    Some(node),
                    redis::sentinel::SentinelServerType::Master,
                )?;
                let master = client.async_get_client().await?;
                let cfg = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(command));
                Ok(Conn::Single(
                    master
                        .get_multiplexed_async_connection_with_config(&cfg)
                        .await?,
                ))
            }
        }
    }

    /// The connection and its number, made if there is none.
    async fn handle(&self) -> RedisResult<(u64, Conn)> {
        let Lazy {
            target, conn, made, ..
        } = &self.backend;
        let mut guard = conn.lock().await;
        if let Some(c) = &*guard {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(self.config.connect_timeout, self.connect(target))
            .await
            .map_err(|_| timeout_error("connect"))??;
        let n = made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *guard = Some((n, c.clone()));
        Ok((n, c))
    }

    /// Forgets the connection, so that the next call makes it again (after a failover,
    /// Sentinel then names the new master). Calls still on the old one finish there.
    pub async fn forget(&self) {
        *self.backend.conn.lock().await = None;
    }

    /// Forgets connection `n` (if it is still the one) after a connection-level error, a
    /// timeout or a reply of the wrong kind (replies and requests may no longer pair up on it).
    async fn after<T>(&self, n: u64, r: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &r {
            if !matches!(
                e.kind(),
                redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
            ) {
                let mut guard = self.backend.conn.lock().await;
                if guard.as_ref().is_some_and(|(m, _)| *m == n) {
                    *guard = None;
                }
            }
        }
        r
    }

    /// Marks a call in flight; whether none other was (the connection was idle).
    fn start(&self) -> (InFlight<'_>, bool) {
        let before = self
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (InFlight(&self.in_flight), before == 0)
    }

    /// Runs `script` with `keys` and `args` (EVALSHA, and the source again after NOSCRIPT).
    ///
    /// A call made on an idle connection that turns out closed (Redis closed it while idle:
    /// its `timeout`, `CLIENT KILL`, a restart) is made once more on a new connection, as the
    /// direct paths do by looking before they send: it never reached Redis, and Redis is up.
    /// A call that shared the connection with others when it broke is not repeated (Redis may
    /// have run it).
    pub async fn eval<K: AsRef<str>, A: AsRef<str>>(
        &self,
        script: &Script,
        keys: &[K],
        args: &[A],
    ) -> RedisResult<Value> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(k.as_ref());
        }
        for a in args {
            inv.arg(a.as_ref());
        }
        let inv = &inv;
        self.retrying(|conn| async move {
            match conn {
                Conn::Cluster(mut c) => inv.invoke_async(&mut c).await,
                Conn::Single(mut c) => inv.invoke_async(&mut c).await,
            }
        })
        .await
    }

    /// Runs `cmd`, once more on a new connection if it was made on an idle one that turns out
    /// closed (as [`RedisStore::eval`]).
    async fn query(&self, cmd: &Cmd) -> RedisResult<Value> {
        self.retrying(|conn| async move {
            match conn {
                Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
                Conn::Single(mut c) => cmd.query_async(&mut c).await,
            }
        })
        .await
    }

    /// Makes `call` on a connection, and once more on a new one if the first was idle and turns
    /// out closed ([`RedisStore::eval`] says why only then).
    async fn retrying<F, Fut>(&self, mut call: F) -> RedisResult<Value>
    where
        F: FnMut(Conn) -> Fut,
        Fut: std::future::Future<Output = RedisResult<Value>>,
    {
        let (_guard, idle) = self.start();
        let mut tries = if idle { 2 } else { 1 };
        loop {
            tries -= 1;
            let (n, conn) = self.handle().await?;
            match self.after(n, call(conn).await).await {
                Err(e) if tries > 0 && closed(&e) => continue,
                r => return r,
            }
        }
    }

    /// One call of the decision script for `requests`: as a function, loaded again if Redis
    /// lost it, or by `EVALSHA` and its source where functions are refused
    /// ([`invoke::Invoke::next`]).
    async fn run_decide(&self, requests: &[&Request]) -> RedisResult<Value> {
        let mut how = self.functions.first();
        loop {
            if how.needs_load() {
                match self.query(&load_command()).await {
                    Ok(_) => {}
                    // Refused: the call after it says how to go on.
                    Err(e)
                        if matches!(
                            e.kind(),
                            redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
                        ) =>
                    {
                        self.functions.refuse()
                    }
                    Err(e) => return Err(e),
                }
            }
            match self.query(&batch_command(requests, how)).await {
                Err(e) => match how.next(&e, &self.functions) {
                    Some(next) => how = next,
                    None => return Err(e),
                },
                r => return r,
            }
        }
    }

    /// Runs the decision script for one decision ([`script::batch_command`] over tokio).
    pub async fn decide(&self, request: &Request) -> RedisResult<Reply> {
        let r = parse_reply(self.run_decide(&[request]).await?)
            .and_then(|mut replies| replies.pop().ok_or_else(unexpected));
        if r.is_err() {
            // A reply of the wrong shape may be another request's: start afresh.
            self.forget().await;
        }
        r
    }

    /// Runs the decision script once for several decisions at one time (their keys in one
    /// Cluster slot), replying in order.
    pub async fn decide_all(&self, requests: &[&Request]) -> RedisResult<Vec<Reply>> {
        let r = parse_reply(self.run_decide(requests).await?).and_then(|replies| {
            if replies.len() == requests.len() {
                Ok(replies)
            } else {
                Err(unexpected())
            }
        });
        if r.is_err() {
            self.forget().await;
        }
        r
    }

    /// Deletes `keys` (one key's state under every limit); whether any existed.
    pub async fn delete(&self, keys: &[String]) -> RedisResult<bool> {
        let mut cmd = redis::cmd("DEL");
        for k in keys {
            cmd.arg(k.as_str());
        }
        let n: i64 = redis::FromRedisValue::from_redis_value(self.query(&cmd).await?)?;
        Ok(n > 0)
    }
}

fn timeout_error(what: &'static str) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, what))
}
