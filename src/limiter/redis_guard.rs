//! What every Redis-backed decider shares ([`RedisGuard`]): this process's connection, the
//! circuit breaker around Redis, the counters, and the failure reports for the `seawall.redis`
//! logger. [`super::redis_limiter::RedisLimiter`] (a key's limits) and the HTTP policy on Redis
//! ([`crate::http::redis_budgets`]: a request's budgets) each hold one and add only what their
//! decisions are and what their failure policy answers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::redis_failure::{ErrorLog, OnError, Report, StoreError};
use crate::breaker::{Breaker, BreakerConfig, Outcome, Permit, REJECTED};
use crate::clock::{Nanos, NANOS_PER_SEC};
use crate::error::Error;
use crate::store::redis::pool::BlockingPool;
use crate::store::redis::reply::Answer;
use crate::store::redis::round_trips::RoundTrips;
use crate::store::redis::script::{packed_batch, Reply, Request};
use crate::store::redis::{process::ProcessStore, RedisConfig, RedisStore};

/// Counters of what a shared limiter did.
#[derive(Debug, Default)]
pub struct RedisLimiterStats {
    /// Decisions asked for.
    pub decisions: AtomicU64,
    /// Decisions refused (the `limited` stats key).
    pub limited: AtomicU64,
    /// Calls to Redis that failed or timed out.
    pub errors: AtomicU64,
    /// Decisions the failure policy made (failures and open-breaker short cuts).
    pub fallbacks: AtomicU64,
}

/// The settings of a Redis-backed limiter besides its limits.
#[derive(Debug, Clone)]
pub struct RedisLimiterConfig {
    /// Where and how to reach Redis.
    pub redis: RedisConfig,
    /// Prepended to every key; must not hold `{` or `}` (the key's hash tag follows it).
    pub prefix: String,
    /// The failure policy.
    pub on_error: OnError,
    /// Keys the `Local` policy's in-memory limiter holds at most.
    pub max_local_keys: usize,
    /// Least time between two failure reports.
    pub log_interval: Nanos,
    /// The breaker around Redis.
    pub breaker: BreakerConfig,
}

/// The breaker's permit for one decision and the times its policy decides at.
#[derive(Debug)]
pub struct Ticket {
    permit: Permit,
    local_now: Nanos,
    /// Whether `local_now` is the real clock's (no caller's clock was given): only then does
    /// the real time the call took move it on. A manual clock stands still while Redis is asked.
    real_clock: bool,
}

impl Ticket {
    /// The time, on the caller's clock, at which a call that took `took` (real time) ended.
    pub fn done_at(&self, took: Nanos) -> Nanos {
        if self.real_clock {
            self.local_now.saturating_add(took)
        } else {
            self.local_now
        }
    }
}

/// A Redis connection per process, guarded by a breaker, with counters and rate-limited
/// failure reports.
pub struct RedisGuard {
    config: RedisLimiterConfig,
    store: ProcessStore,
    breaker: Breaker,
    /// Outages (WARNING) and configuration errors (ERROR), each at most once per interval.
    log: ErrorLog,
    config_log: ErrorLog,
    reports: Mutex<Vec<Report>>,
    has_report: AtomicBool,
    /// When a connection last broke: failures of calls already in flight then are the same
    /// failure, not more of them in a row.
    last_broken: Mutex<Option<Instant>>,
    /// Whether a call failed since the last success: the next success logs the recovery.
    failing: AtomicBool,
    /// Who it decides for in log records (a limiter's limits, `http`).
    label: String,
    /// What it did.
    pub stats: RedisLimiterStats,
    /// Its script calls that brought decisions back (the direct connection's too).
    pub round_trips: Arc<RoundTrips>,
}

fn timed_out(timeout: Duration) -> redis::RedisError {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no reply within command_timeout ({timeout:?})"),
    )
    .into()
}

impl RedisGuard {
    /// Checks the settings; connects on first use.
    pub fn new(config: RedisLimiterConfig, now: Nanos) -> Result<Self, Error> {
        Ok(RedisGuard {
            store: ProcessStore::new(config.redis.clone())?,
            breaker: Breaker::new(config.breaker.clone(), now)?,
            log: ErrorLog::new(config.log_interval, false),
            config_log: ErrorLog::new(config.log_interval, true),
            reports: Mutex::new(Vec::new()),
            has_report: AtomicBool::new(false),
            last_broken: Mutex::new(None),
            failing: AtomicBool::new(false),
            label: String::new(),
            config,
            stats: RedisLimiterStats::default(),
            round_trips: Arc::default(),
        })
    }

    /// Names who it decides for in its log records (the `limiter` field): the limits string
    /// of a limiter, never a client key.
    pub fn labelled(mut self, label: String) -> Self {
        self.label = label;
        self
    }

    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("limiter", self.label.clone()),
            (
                "url",
                crate::store::redis::url::redact(&self.config.redis.url),
            ),
            ("on_error", self.config.on_error.name().to_owned()),
        ]
    }

    /// The settings.
    pub fn config(&self) -> &RedisLimiterConfig {
        &self.config
    }

    /// The breaker around Redis.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// This process's store (see [`ProcessStore`]).
    pub fn store(&self) -> Arc<RedisStore> {
        self.store.get()
    }

    /// Counts a decision and asks the breaker for a call: `None` while it is open (the failure
    /// policy then decides at once). `script_clock`: whether the caller gives the script its
    /// own time (then `local_now` is that clock's and does not move while Redis is asked).
    pub fn ticket(&self, local_now: Nanos, script_clock: bool) -> Option<Ticket> {
        self.stats.decisions.fetch_add(1, Ordering::Relaxed);
        let permit = self.breaker.try_acquire(local_now);
        (permit != REJECTED).then_some(Ticket {
            permit,
            local_now,
            real_clock: !script_clock,
        })
    }

    /// The policy's answer is about to be used (a failure, or an open breaker).
    pub fn note_fallback(&self) {
        self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// A decision was refused.
    pub fn note_limited(&self) {
        self.stats.limited.fetch_add(1, Ordering::Relaxed);
    }

    /// How long a client refused by `on_error="deny"` should wait: until the breaker lets a
    /// probe through, at least a second.
    pub fn deny_wait(&self, now: Nanos) -> Nanos {
        self.breaker.retry_after(now).max(NANOS_PER_SEC)
    }

    /// One script call for `request` on the caller's thread over a blocking connection from
    /// `pool` (one write and one read; no thread hop), and how long it took. Only for a store
    /// [`BlockingPool`] can reach (one server over plain TCP or a Unix socket).
    pub fn call_blocking(
        &self,
        pool: &BlockingPool,
        request: &Request,
    ) -> (redis::RedisResult<Reply>, Nanos) {
        let started = Instant::now();
        let batch = [request];
        let reply = pool
            .call_script(&self.config.redis, |how| packed_batch(&batch, how))
            .and_then(Answer::decisions)
            .and_then(|mut v| {
                v.pop()
                    .ok_or_else(|| std::io::Error::other("no decision").into())
            });
        let took = started.elapsed().as_nanos() as Nanos;
        if reply.is_ok() {
            self.round_trips.record(1, took);
        }
        (reply, took)
    }

    /// One script call for `request` over tokio within `command_timeout`, and how long it took.
    pub async fn call(&self, request: &Request) -> (redis::RedisResult<Reply>, Nanos) {
        let store = self.store();
        let started = Instant::now();
        let timeout = self.config.redis.command_timeout;
        let r = tokio::time::timeout(timeout, store.decide(request)).await;
        let took = started.elapsed().as_nanos() as Nanos;
        if matches!(r, Ok(Ok(_))) {
            self.round_trips.record(1, took);
        }
        if r.is_err() {
            // Its reply may still come, and be taken for the next request's.
            store.forget().await;
        }
        (r.unwrap_or_else(|_| Err(timed_out(timeout))), took)
    }

    /// [`RedisGuard::call`] for several decisions in one script call.
    pub async fn call_all(&self, requests: &[&Request]) -> (redis::RedisResult<Vec<Reply>>, Nanos) {
        let store = self.store();
        let started = Instant::now();
        let timeout = self.config.redis.command_timeout;
        let r = tokio::time::timeout(timeout, store.decide_all(requests)).await;
        let took = started.elapsed().as_nanos() as Nanos;
        if matches!(r, Ok(Ok(_))) {
            self.round_trips.record(requests.len(), took);
        }
        if r.is_err() {
            store.forget().await;
        }
        (r.unwrap_or_else(|_| Err(timed_out(timeout))), took)
    }

    /// Reports a call that answered to the breaker (and, the first after failures, the
    /// recovery to the `seawall.redis` log).
    pub fn succeeded(&self, ticket: &Ticket, took: Nanos) {
        self.breaker
            .record(ticket.permit, Outcome::Success, took, ticket.done_at(took));
        if self.failing.load(Ordering::Relaxed) && self.failing.swap(false, Ordering::Relaxed) {
            let url = crate::store::redis::url::redact(&self.config.redis.url);
            crate::event!(log::Level::Info, "seawall::redis", "redis_recovered",
                { limiter = self.label.as_str(), url = url.as_str() },
                "Redis at {url} answers again; decisions are shared again");
        }
    }

    /// Gives up on a call sent by another process (the parent of this forked child, which gets
    /// its reply): the breaker does not count it.
    pub fn abandoned(&self, ticket: &Ticket, took: Nanos) {
        self.breaker
            .record(ticket.permit, Outcome::Ignored, took, ticket.done_at(took));
    }

    /// Reports a failed call to the breaker, the counters and the log. A configuration error
    /// is returned (the breaker ignores it: Redis is up); an outage is `Ok` (the policy then
    /// decides).
    pub fn failed(
        &self,
        ticket: &Ticket,
        e: &redis::RedisError,
        took: Nanos,
    ) -> Result<(), StoreError> {
        let now = ticket.done_at(took);
        let url = crate::store::redis::url::redact(&self.config.redis.url);
        if crate::store::redis::direct::is_configuration_error(e) {
            self.breaker
                .record(ticket.permit, Outcome::Ignored, took, now);
            let msg = format!(
                "Redis at {url} refuses seawall: {e}. This is a configuration error (the \
                 credentials, the ACL or the database in the store URL), not an outage: \
                 on_error does not apply"
            );
            self.report(self.config_log.note(&msg));
            return Err(StoreError::Configuration(msg));
        }
        let outcome = if self.same_breakage(e, took) {
            Outcome::Ignored
        } else {
            Outcome::Failure
        };
        let transitions = self.breaker.transitions();
        self.breaker.record(ticket.permit, outcome, took, now);
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        self.failing.store(true, Ordering::Relaxed);
        self.report(self.log.note(&format!(
            "Redis at {url} failed: {e}; decisions follow on_error={} until it recovers",
            self.config.on_error.name()
        )));
        let opened = self.breaker.transitions() != transitions
            && self
                .breaker
                .last_transition()
                .is_some_and(|t| t.to == crate::breaker::State::Open);
        if opened {
            let wait = self.breaker.retry_after(now) as f64 / NANOS_PER_SEC as f64;
            crate::event!(log::Level::Warn, "seawall::redis", "redis_breaker_open",
                { limiter = self.label.as_str(), url = url.as_str(),
                  on_error = self.config.on_error.name(), retry_after = wait },
                "the breaker around Redis at {url} opened: for {wait:.3} s decisions follow \
                 on_error={} without asking Redis", self.config.on_error.name());
        }
        Ok(())
    }

    /// Whether a failed call was already in flight when a connection last broke: then it is
    /// part of that one failure, and does not count as one more in a row for the breaker
    /// (`CLIENT KILL` under 40 decisions in flight is one failure, not 40). Error replies from
    /// the server are each their own failure.
    fn same_breakage(&self, e: &redis::RedisError, took: Nanos) -> bool {
        if matches!(
            e.kind(),
            redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
        ) {
            return false;
        }
        let now = Instant::now();
        let started = now.checked_sub(Duration::from_nanos(took)).unwrap_or(now);
        let mut last = self.last_broken.lock();
        if last.is_some_and(|t| started < t) {
            return true;
        }
        *last = Some(now);
        false
    }

    fn report(&self, r: Option<Report>) {
        if let Some(mut r) = r {
            r.fields = self.fields();
            self.reports.lock().push(r);
            self.has_report.store(true, Ordering::Release);
        }
    }

    /// Deletes `keys` in Redis, through the breaker as decisions are: while it is open no call
    /// is made, and a failure counts towards opening it and is logged at most once per
    /// `log_interval`. Whether Redis held any of them; `what` names the operation in errors.
    pub async fn delete(
        &self,
        what: &str,
        keys: &[String],
        local_now: Nanos,
    ) -> Result<bool, StoreError> {
        let permit = self.breaker.try_acquire(local_now);
        if permit == REJECTED {
            let wait = self.breaker.retry_after(local_now) as f64 / NANOS_PER_SEC as f64;
            return Err(StoreError::Unavailable(format!(
                "{what} failed: Redis at {} is unavailable (the breaker around it is open; the \
                 next try in {wait:.3} s)",
                crate::store::redis::url::redact(&self.config.redis.url),
            )));
        }
        let ticket = Ticket {
            permit,
            local_now,
            real_clock: true,
        };
        let store = self.store();
        let started = Instant::now();
        let timeout = self.config.redis.command_timeout;
        let r = tokio::time::timeout(timeout, store.delete(keys)).await;
        if r.is_err() {
            store.forget().await;
        }
        let r = r.unwrap_or_else(|_| Err(timed_out(timeout)));
        let took = started.elapsed().as_nanos() as Nanos;
        match r {
            Ok(existed) => {
                self.succeeded(&ticket, took);
                Ok(existed)
            }
            Err(e) => {
                self.failed(&ticket, &e, took)?;
                Err(StoreError::Unavailable(format!("{what} failed: {e}")))
            }
        }
    }

    /// The reports due now for the `seawall.redis` logger (each kind at most once per
    /// `log_interval`). One atomic load when there are none.
    pub fn take_reports(&self) -> Vec<Report> {
        if !self.has_report.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(&mut *self.reports.lock())
    }
}
