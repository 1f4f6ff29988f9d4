//! The Redis store: limiter state in Redis, shared by every worker and host that names the same
//! server, changed only by one Lua script ([`decide.lua`](self)) so that each decision is atomic.
//!
//! The script runs the transitions of `src/algorithm/` in integer microseconds, for all of a key's
//! limits at once, all or nothing, on the server's own clock. redis-rs sends it as `EVALSHA` and
//! loads it again on `NOSCRIPT` (after a restart or a `SCRIPT FLUSH`). One multiplexed connection
//! carries every concurrent decision, so concurrent calls pipeline on the wire.
//!
//! Connections are made lazily and made again after a failure, so a limiter built while Redis is
//! down works as soon as it is back. What to do meanwhile is policy, decided by the caller
//! ([`crate::limiter::shared`]).

pub mod direct;
pub mod runtime;
pub mod url;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{RedisError, RedisResult, Script, Value};

use crate::error::Error;
use url::Target;

/// The decision script's source.
pub const DECIDE_LUA: &str = include_str!("decide.lua");

/// The script's SHA-1, as `EVALSHA` names it.
pub fn decide_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| Script::new(DECIDE_LUA).get_hash().to_owned())
}

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

enum Backend {
    /// One server: a multiplexed connection that reconnects by itself.
    Managed(ConnectionManager),
    /// Cluster or Sentinel: a connection made on first use and again after it breaks.
    Lazy(Box<Lazy>),
}

struct Lazy {
    target: Target,
    conn: tokio::sync::Mutex<Option<Conn>>,
}

#[derive(Clone)]
enum Conn {
    Cluster(ClusterConnection),
    Single(MultiplexedConnection),
}

/// A connection to one Redis deployment, with the decision script.
pub struct RedisStore {
    backend: Backend,
    script: Script,
    config: RedisConfig,
}

fn client_error(e: RedisError) -> Error {
    Error::invalid("store", format!("is not a usable Redis URL: {e}"))
}

impl RedisStore {
    /// Parses the URL and prepares the connection; connects on first use. Must be called
    /// inside the tokio runtime that will drive it (see [`runtime::runtime`]).
    pub fn new(config: RedisConfig) -> Result<Self, Error> {
        runtime::install_crypto();
        let target = url::parse(&config.url)?;
        let backend = match target {
            Target::Single(ref u) => {
                let client = redis::Client::open(u.as_str()).map_err(client_error)?;
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.command_timeout))
                    // Reconnect quickly and quietly; the caller's breaker paces the retries.
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(config.connect_timeout);
                Backend::Managed(
                    ConnectionManager::new_lazy_with_config(client, cfg).map_err(client_error)?,
                )
            }
            other => Backend::Lazy(Box::new(Lazy {
                target: other,
                conn: tokio::sync::Mutex::new(None),
            })),
        };
        Ok(RedisStore {
            backend,
            script: Script::new(DECIDE_LUA),
            config,
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
            Target::Single(_) => unreachable_single(),
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

    /// A connection: the manager's, or the lazily made Cluster / Sentinel one.
    async fn handle(&self) -> RedisResult<Handle> {
        match &self.backend {
            Backend::Managed(m) => Ok(Handle::Managed(m.clone())),
            Backend::Lazy(lazy) => {
                let Lazy { target, conn } = &**lazy;
                let mut guard = conn.lock().await;
                if let Some(c) = &*guard {
                    return Ok(Handle::Lazy(c.clone()));
                }
                let c = tokio::time::timeout(self.config.connect_timeout, self.connect(target))
                    .await
                    .map_err(|_| timeout_error("connect"))??;
                *guard = Some(c.clone());
                Ok(Handle::Lazy(c))
            }
        }
    }

    /// Forgets a Cluster / Sentinel connection after a connection-level error, so the next call
    /// makes it again (after a failover, Sentinel then names the new master).
    async fn after<T>(&self, r: RedisResult<T>) -> RedisResult<T> {
        if let (Err(e), Backend::Lazy(lazy)) = (&r, &self.backend) {
            if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                *lazy.conn.lock().await = None;
            }
        }
        r
    }

    /// Runs `script` with `keys` and `args` (EVALSHA, and the source again after NOSCRIPT).
    pub async fn eval<K: AsRef<str>>(
        &self,
        script: &Script,
        keys: &[K],
        args: &[String],
    ) -> RedisResult<Value> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(k.as_ref());
        }
        for a in args {
            inv.arg(a.as_str());
        }
        let r = match self.handle().await? {
            Handle::Managed(mut m) => inv.invoke_async(&mut m).await,
            Handle::Lazy(Conn::Cluster(mut c)) => inv.invoke_async(&mut c).await,
            Handle::Lazy(Conn::Single(mut c)) => inv.invoke_async(&mut c).await,
        };
        self.after(r).await
    }

    /// Runs the decision script for one decision and returns its eight integers.
    pub async fn decide(&self, keys: &[&str], args: &[String]) -> RedisResult<[i64; 8]> {
        let mut replies = parse_reply(self.eval(&self.script, keys, args).await?)?;
        replies.pop().ok_or_else(unexpected)
    }

    /// Deletes `keys` (one key's state under every limit); whether any existed.
    pub async fn delete(&self, keys: &[String]) -> RedisResult<bool> {
        let mut cmd = redis::cmd("DEL");
        for k in keys {
            cmd.arg(k.as_str());
        }
        let r: RedisResult<i64> = match self.handle().await? {
            Handle::Managed(mut m) => cmd.query_async(&mut m).await,
            Handle::Lazy(Conn::Cluster(mut c)) => cmd.query_async(&mut c).await,
            Handle::Lazy(Conn::Single(mut c)) => cmd.query_async(&mut c).await,
        };
        Ok(self.after(r).await? > 0)
    }
}

enum Handle {
    Managed(ConnectionManager),
    Lazy(Conn),
}

fn unreachable_single() -> RedisResult<Conn> {
    Err((
        redis::ErrorKind::Client,
        "single-server URLs use the connection manager",
    )
        .into())
}

fn timeout_error(what: &'static str) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, what))
}

fn unexpected() -> RedisError {
    (
        redis::ErrorKind::Client,
        "unexpected reply from the seawall script",
    )
        .into()
}

/// The script's eight integers per decision, or an error for any other reply.
pub fn parse_reply(value: Value) -> RedisResult<Vec<[i64; 8]>> {
    let Value::Array(decisions) = value else {
        return Err(unexpected());
    };
    decisions
        .into_iter()
        .map(|d| {
            let Value::Array(items) = d else {
                return Err(unexpected());
            };
            if items.len() != 8 {
                return Err(unexpected());
            }
            let mut out = [0i64; 8];
            for (o, v) in out.iter_mut().zip(items) {
                *o = match v {
                    Value::Int(n) => n,
                    _ => return Err(unexpected()),
                };
            }
            Ok(out)
        })
        .collect()
}
