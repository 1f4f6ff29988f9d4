//! Breakers shared through Redis: every process that names the same breaker adds its outcomes
//! to one count, and a breaker opened in one process opens in all.
//!
//! Each process keeps its own [`Breaker`], so a guarded call never waits for Redis. A task on
//! seawall's I/O thread sends what the breaker saw ([`Delta`](super::Delta)) every `interval`,
//! and at once when it opens; the script (`shared.lua`, after the time prelude of
//! [`crate::store::redis::script`]) adds it to the shared counts, trips the shared breaker on
//! the same thresholds (failures in a row across processes, or the failure / slow-call rate over
//! the time window), and answers how long the breaker stays open for everyone, which the process
//! adopts. So a breaker opened anywhere is open everywhere within `interval` plus one round trip
//! to Redis. Half-open probes are each process's own. When Redis is down, each breaker goes on
//! alone and the counts it could not send are sent later. A host store keeps the same counts in
//! this machine's shared memory instead ([`super::host_record`]), merged by the same rules.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::{Script, Value};
use tokio::sync::Notify;

use super::{Breaker, WindowKind};
use crate::clock::Nanos;
use crate::error::Error;
use crate::store::redis::{process::ProcessStore, runtime, RedisConfig, RedisStore};

/// Where a shared breaker's counts are kept.
enum Transport {
    /// In Redis, merged by `shared.lua`; this process's store.
    Redis { store: ProcessStore, script: Script },
    /// In this machine's shared memory, merged in place.
    Host(super::host_record::HostRecord),
}

/// The clock of a shared breaker: the time to send (None: Redis's own) and the local time.
pub type Times = Box<dyn Fn() -> (Option<Nanos>, Nanos) + Send + Sync>;

/// The task that shares one breaker's state.
///
/// Process-aware: in a child forked after use (gunicorn `--preload`), the first call makes a
/// connection of the child's own and starts the sharing loop again on the child's runtime (the
/// parent's are the parent's; they are forgotten in the child, never used or dropped).
pub struct BreakerSync {
    breaker: Arc<Breaker>,
    /// Where the shared counts are.
    transport: Transport,
    /// The process the sharing loop runs in (0: not started), and the loop.
    task_pid: AtomicU32,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    key: String,
    interval: Duration,
    timeout: Duration,
    notify: Notify,
    times: Times,
    /// Syncs that succeeded.
    pub syncs: AtomicU64,
    /// Syncs that failed.
    pub errors: AtomicU64,
    /// The last failure.
    pub last_error: Mutex<Option<String>>,
    /// The shared counts at the last sync: failures in a row, calls and failures in the window.
    pub shared: Mutex<(i64, i64, i64)>,
}

impl BreakerSync {
    /// Prepares the sharing of `breaker` under `key`; [`BreakerSync::start`] starts it.
    pub fn new(
        breaker: Arc<Breaker>,
        redis: RedisConfig,
        key: String,
        interval: Duration,
        times: Times,
    ) -> Result<Arc<Self>, Error> {
        let timeout = redis.command_timeout;
        let transport = Transport::Redis {
            store: ProcessStore::new(redis)?,
            script: Script::new(crate::store::redis::script::BREAKER_LUA),
        };
        Ok(Self::with(
            breaker, transport, key, interval, timeout, times,
        ))
    }

    /// Prepares the sharing of `breaker` under `key` through host store `store` (its NAME):
    /// the counts in this machine's shared memory instead of Redis.
    pub fn new_host(
        breaker: Arc<Breaker>,
        store: &str,
        key: String,
        interval: Duration,
        times: Times,
    ) -> Result<Arc<Self>, Error> {
        let record = super::host_record::HostRecord::open(store, &key)?;
        Ok(Self::with(
            breaker,
            Transport::Host(record),
            key,
            interval,
            Duration::from_secs(1),
            times,
        ))
    }

    fn with(
        breaker: Arc<Breaker>,
        transport: Transport,
        key: String,
        interval: Duration,
        timeout: Duration,
        times: Times,
    ) -> Arc<Self> {
        Arc::new(BreakerSync {
            breaker,
            transport,
            task_pid: AtomicU32::new(0),
            task: Mutex::new(None),
            key,
            interval,
            timeout,
            notify: Notify::new(),
            times,
            syncs: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
            shared: Mutex::new((0, 0, 0)),
        })
    }

    /// Starts the sharing loop in this process if it does not run here yet (first use, or a
    /// forked child's first use); it runs until [`BreakerSync::stop`]. One atomic load when it
    /// runs.
    pub fn start(self: &Arc<Self>) {
        let pid = runtime::pid();
        if self.task_pid.load(Ordering::Acquire) == pid {
            return;
        }
        let mut task = self.task.lock();
        if self.task_pid.load(Ordering::Acquire) == pid {
            return;
        }
        if let Some(parents) = task.take() {
            // The parent's loop, on the parent's runtime: forgotten, never touched here.
            std::mem::forget(parents);
        }
        *task = Some(self.spawn());
        self.task_pid.store(pid, Ordering::Release);
    }

    /// Stops the sharing loop (if it runs in this process).
    pub fn stop(&self) {
        let mine = self.task_pid.swap(0, Ordering::AcqRel) == runtime::pid();
        if let Some(task) = self.task.lock().take() {
            if mine {
                task.abort();
            } else {
                std::mem::forget(task);
            }
        }
    }

    fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        runtime::handle().spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(me.interval) => {}
                    _ = me.notify.notified() => {}
                }
                let _ = me.sync_once().await;
            }
        })
    }

    /// Asks for a sync now (the breaker just opened).
    pub fn poke(&self) {
        self.notify.notify_one();
    }

    /// Sends what the breaker saw and adopts the shared state; the seconds it stays open for
    /// everyone.
    pub async fn sync_once(&self) -> Result<Nanos, String> {
        let delta = self.breaker.take_delta();
        // One instant for both clocks: Redis answers "open for d from `now`", so the breaker
        // adopts "open until `local` + d", not + d from whenever the reply arrived.
        let (now, local) = (self.times)();
        let cfg = self.breaker.config();
        let window = match cfg.window {
            WindowKind::Time(d) => d,
            // A count window has no meaning across processes: its time equivalent is a minute.
            WindowKind::Count(_) => 60 * crate::clock::NANOS_PER_SEC,
        };
        let rate = |r: Option<f64>| r.map_or_else(|| "-1".to_owned(), |r| r.to_string());
        let args = vec![
            now.map_or_else(String::new, |n| (n / 1000).to_string()),
            delta.calls.to_string(),
            delta.failures.to_string(),
            delta.slow.to_string(),
            delta.trailing_failures.to_string(),
            u8::from(delta.success_seen).to_string(),
            delta
                .opened_for
                .map_or(0, |d| (d / 1000).max(1))
                .to_string(),
            u8::from(delta.closed).to_string(),
            cfg.failure_threshold.to_string(),
            rate(cfg.failure_rate_threshold),
            rate(cfg.slow_call_rate_threshold),
            cfg.minimum_calls.to_string(),
            (window / 1000).to_string(),
            (cfg.recovery_timeout / 1000).max(1).to_string(),
        ];
        let r = match &self.transport {
            Transport::Redis { store, script } => {
                let keys = [self.key.clone()];
                let store: Arc<RedisStore> = store.get();
                let r = tokio::time::timeout(self.timeout, store.eval(script, &keys, &args)).await;
                if r.is_err() {
                    store.forget().await;
                }
                r.map_err(|_| format!("no reply within command_timeout ({:?})", self.timeout))
                    .and_then(|r| r.map_err(|e| e.to_string()))
                    .and_then(|v| parse(v).ok_or_else(|| "unexpected reply".to_owned()))
            }
            Transport::Host(record) => {
                let thresholds = super::host_record::Thresholds {
                    failure_threshold: u64::from(cfg.failure_threshold),
                    failure_rate: cfg.failure_rate_threshold,
                    slow_rate: cfg.slow_call_rate_threshold,
                    minimum_calls: u64::from(cfg.minimum_calls),
                    window_us: window / 1000,
                    recovery_us: (cfg.recovery_timeout / 1000).max(1),
                };
                Ok(record.merge(&delta, &thresholds, now.unwrap_or(local) / 1000))
            }
        };
        match r {
            Ok([open_us, consec, total, failed]) => {
                self.syncs.fetch_add(1, Ordering::Relaxed);
                *self.shared.lock() = (consec, total, failed);
                let open = (open_us.max(0) as u64).saturating_mul(1000);
                if open > 0 && delta.opened_for.is_none() {
                    // Open until `local` + `open`: what is left of it now, if anything.
                    let (_, after) = (self.times)();
                    let left = local.saturating_add(open).saturating_sub(after);
                    if left > 0 {
                        self.breaker.adopt_open(left, after);
                    }
                }
                Ok(open)
            }
            Err(e) => {
                self.breaker.return_delta(delta);
                self.errors.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock() = Some(e.clone());
                Err(e)
            }
        }
    }
}

fn parse(v: Value) -> Option<[i64; 4]> {
    let Value::Array(items) = v else { return None };
    let mut out = [0i64; 4];
    if items.len() != 4 {
        return None;
    }
    for (o, v) in out.iter_mut().zip(items) {
        let Value::Int(n) = v else { return None };
        *o = n;
    }
    Some(out)
}
