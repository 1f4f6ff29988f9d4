//! A rules engine's link to its shared control plane ([`crate::rules::shared`]): the first
//! load, the thread that follows the store's version and flushes this process's metrics every
//! `sync_interval`, and the writes the engine's methods make.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock::{Clock, DefaultClock, ManualClock, Nanos};
use crate::error::Error;
use crate::rules::overrides::StoredOverride;
use crate::rules::shared::ControlPlane;
use crate::rules::Rules;
use crate::store::redis::runtime;

/// The control plane, what of it this process has applied, and its watcher.
pub(crate) struct Shared {
    pub(crate) plane: ControlPlane,
    /// The store's version last applied here.
    seen: AtomicU64,
    loaded: AtomicBool,
    /// The process whose watcher runs (a forked child starts its own).
    watcher: AtomicU32,
    /// One reload at a time.
    reloading: Mutex<()>,
    interval: Duration,
    /// The clock the watcher ends overrides by, if it can read it without Python.
    clock: Option<ManualClock>,
    /// The overrides the store held at the last reload (and those added here since): the
    /// watcher ends them in the store even after this process's own copy let them go.
    stored: Mutex<Vec<StoredOverride>>,
    /// Flushes and reloads that failed (Redis down): they are tried again next interval.
    pub(crate) failures: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        plane: ControlPlane,
        interval: Duration,
        clock: Option<ManualClock>,
    ) -> Arc<Self> {
        Arc::new(Shared {
            plane,
            seen: AtomicU64::new(0),
            loaded: AtomicBool::new(false),
            watcher: AtomicU32::new(0),
            reloading: Mutex::new(()),
            interval,
            clock,
            stored: Mutex::new(Vec::new()),
            failures: AtomicU64::new(0),
        })
    }

    fn now(&self) -> Nanos {
        match &self.clock {
            Some(m) => m.now(),
            None => DefaultClock.now(),
        }
    }

    /// Whether the store's rules were read once in this process.
    pub(crate) fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Makes sure the store's rules have been loaded once in this process and its watcher
    /// runs: one atomic load and one pid compare once both are done.
    pub(crate) fn ensure(self: &Arc<Self>, rules: &Arc<Rules>) -> Result<(), Error> {
        let pid = runtime::pid();
        if self.watcher.load(Ordering::Acquire) != pid
            && self.watcher.swap(pid, Ordering::AcqRel) != pid
        {
            self.spawn(rules);
        }
        if !self.loaded.load(Ordering::Acquire) {
            self.reload(rules)?;
        }
        Ok(())
    }

    fn spawn(self: &Arc<Self>, rules: &Arc<Rules>) {
        let shared: Weak<Shared> = Arc::downgrade(self);
        let rules: Weak<Rules> = Arc::downgrade(rules);
        let interval = self.interval;
        let pid = runtime::pid();
        let _ = std::thread::Builder::new()
            .name("seawall-rules-sync".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                let (Some(shared), Some(rules)) = (shared.upgrade(), rules.upgrade()) else {
                    return;
                };
                if shared.watcher.load(Ordering::Acquire) != pid {
                    return;
                }
                shared.tick(&rules);
            });
    }

    /// One interval's work: this process's metrics added to the store's, the store's changes
    /// applied here, and the overrides whose time is up removed from the store (and logged there
    /// once).
    pub(crate) fn tick(&self, rules: &Rules) {
        let r = self
            .flush(rules)
            .and_then(|()| match self.plane.version() {
                Ok(v) if v != self.seen.load(Ordering::Acquire) => self.reload(rules).map(drop),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            })
            .and_then(|()| self.expire(rules));
        if let Err(e) = r {
            self.failures.fetch_add(1, Ordering::Relaxed);
            // The error names the operation and what Redis said, not the URL (nor a password).
            crate::event!(
                log::Level::Warn,
                "seawall::rules",
                "rules_sync_failed",
                { error = e.to_string().as_str() },
                "sharing the rules with their store failed: {e}; this process keeps its \
                 rules and tries again every sync_interval"
            );
        }
    }

    /// Adds what this process counted since the last flush to the store's totals. A flush that
    /// fails loses that interval's counts (the decisions themselves are unaffected).
    pub(crate) fn flush(&self, rules: &Rules) -> Result<(), Error> {
        let mut result = Ok(());
        for (name, delta) in rules.take_metrics() {
            if let Err(e) = self.plane.flush(&name, &delta) {
                result = Err(e);
            }
        }
        result
    }

    /// Applies the store's rules and overrides here.
    pub(crate) fn reload(&self, rules: &Rules) -> Result<u64, Error> {
        let _one = self.reloading.lock();
        let loaded = self.plane.load()?;
        let now = self.now();
        for (name, (spec, place)) in &loaded.rules {
            let same = rules.get(name).is_some_and(|r| r.spec() == spec)
                && rules.place(name) == Some(*place);
            if !same {
                // A rule another version wrote that this one refuses stays out, not fatal.
                let _ = rules.add_ordered(spec.clone(), Some(*place), now);
            }
        }
        for rule in rules.list() {
            if !loaded.rules.contains_key(&rule.spec().name) {
                rules.remove(&rule.spec().name);
            }
        }
        *self.stored.lock() = loaded.overrides.clone();
        rules.overrides.replace(
            loaded
                .overrides
                .into_iter()
                .map(|o| o.into_override())
                .collect(),
        );
        self.seen.store(loaded.version, Ordering::Release);
        self.loaded.store(true, Ordering::Release);
        Ok(loaded.version)
    }

    /// Notes that this process made the change that moved the store to `version`: if it was the
    /// only change since the last one applied, nothing needs reloading.
    pub(crate) fn wrote(&self, version: u64) {
        let _ = self.seen.compare_exchange(
            version.saturating_sub(1),
            version,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Notes an override this process wrote to the store.
    pub(crate) fn added(&self, o: StoredOverride) {
        self.stored.lock().push(o);
    }

    /// Removes from the store the overrides that ended by now, logging each expiry once.
    fn expire(&self, _rules: &Rules) -> Result<(), Error> {
        let now = self.now();
        let due: Vec<StoredOverride> = self
            .stored
            .lock()
            .iter()
            .filter(|o| o.expires_at <= now)
            .cloned()
            .collect();
        for o in due {
            let id = o.override_id;
            let o = o.into_override();
            let entry = o.entry(
                o.expires_at,
                crate::rules::overrides::Action::Expire,
                &o.spec.admin_id,
            );
            // Removed here or by another process: either way no longer due.
            self.plane.remove_override(id, &entry)?;
            self.stored.lock().retain(|s| s.override_id != id);
        }
        Ok(())
    }
}
