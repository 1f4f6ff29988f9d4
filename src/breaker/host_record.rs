//! A breaker shared by the processes of one machine: the counts `shared.lua` keeps in Redis,
//! kept in a small shared-memory file next to a host store's segment
//! (`/dev/shm/seawall-NAME.breaker-<hash of the breaker's key>`), merged under a lock that a
//! killed holder cannot keep (see [`crate::store::host::table`]).
//!
//! The arithmetic is `shared.lua`'s: failures in a row across processes, calls / failures /
//! slow calls per time bucket over the window, and "open until" for everyone. The window is cut
//! into 60 buckets (one second each for windows up to a minute). A process killed mid-merge
//! loses at most the counts it was adding.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};
use sha2::{Digest, Sha256};

use super::Delta;
use crate::error::Error;
use crate::store::host::segment::path_of;

const BUCKETS: usize = 60;
/// Words: the lock, "consec", "until" (µs), the bucket width (µs), then per bucket: its start
/// (µs), calls, failures, slow.
const WORDS: usize = 4 + BUCKETS * 4;

/// What the merge needs of the breaker's settings (`shared.lua`'s arguments).
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Failures in a row that open it.
    pub failure_threshold: u64,
    /// Failure rate that opens it (None: none).
    pub failure_rate: Option<f64>,
    /// Slow-call rate that opens it (None: none).
    pub slow_rate: Option<f64>,
    /// Calls in the window before a rate counts.
    pub minimum_calls: u64,
    /// The window, µs.
    pub window_us: u64,
    /// How long it opens for, µs.
    pub recovery_us: u64,
}

/// One breaker's shared counts in this machine's shared memory.
pub struct HostRecord {
    map: MmapRaw,
}

fn system(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::System {
        permission: e.kind() == std::io::ErrorKind::PermissionDenied,
        message: format!(
            "host store: cannot open the breaker file {}: {e}",
            path.display()
        ),
    }
}

impl HostRecord {
    /// Opens (or creates) the record of breaker `key` in host store `store` (its NAME).
    pub fn open(store: &str, key: &str) -> Result<Self, Error> {
        let digest = Sha256::digest(key.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let path = path_of(&format!("{store}.breaker-{hex}"))?;
        let file = crate::store::host::segment::open_shared(&path)?;
        let bytes = (WORDS * 8) as u64;
        // A new file is all zeros: no counts, closed. Reserved now, as segments are.
        // SAFETY: posix_fallocate on an open descriptor has no memory-safety requirement.
        let r = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, bytes as libc::off_t) };
        if r != 0 {
            return Err(system(&path, std::io::Error::from_raw_os_error(r)));
        }
        let map = MmapOptions::new()
            .len(WORDS * 8)
            .map_raw(&file)
            .map_err(|e| system(&path, e))?;
        Ok(HostRecord { map })
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: WORDS words, page-aligned, only ever accessed atomically.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr() as *const AtomicU64, WORDS) }
    }

    /// Adds `delta` (what one process's breaker saw since its last merge) at `now` (µs) and
    /// decides whether the breaker is open for everyone: µs it stays open (0: closed), failures
    /// in a row, calls and failures in the window.
    pub fn merge(&self, delta: &Delta, t: &Thresholds, now: u64) -> [i64; 4] {
        let w = self.words();
        let _held = crate::store::host::table::hold(&w[0]);
        let get = |i: usize| w[i].load(Ordering::Relaxed);
        let set = |i: usize, v: u64| w[i].store(v, Ordering::Relaxed);
        let bucket = |b: usize| 4 + b * 4;
        let clear = || {
            for b in 0..BUCKETS {
                for k in 0..4 {
                    set(bucket(b) + k, 0);
                }
            }
        };
        let width = t.window_us.div_ceil(BUCKETS as u64).max(1_000_000);
        if get(3) != width {
            // First use, or another window: the buckets mean nothing at this width.
            clear();
            set(3, width);
        }
        let mut consec = get(1);
        let mut open_until = get(2);
        if delta.closed && open_until <= now {
            // A process's probes closed it: everyone starts afresh, as a closed breaker does.
            clear();
            consec = 0;
        }
        consec = if delta.success_seen {
            delta.trailing_failures
        } else {
            consec + delta.failures
        };
        let start = now - now % width;
        let oldest = now.saturating_sub(t.window_us.saturating_sub(width));
        if delta.calls > 0 {
            let b = ((start / width) % BUCKETS as u64) as usize;
            if get(bucket(b)) != start {
                set(bucket(b), start);
                for k in 1..4 {
                    set(bucket(b) + k, 0);
                }
            }
            set(bucket(b) + 1, get(bucket(b) + 1) + delta.calls);
            set(bucket(b) + 2, get(bucket(b) + 2) + delta.failures);
            set(bucket(b) + 3, get(bucket(b) + 3) + delta.slow);
        }
        let (mut total, mut failed, mut slowed) = (0u64, 0u64, 0u64);
        for b in 0..BUCKETS {
            let at = get(bucket(b));
            if at == 0 && get(bucket(b) + 1) == 0 {
                continue;
            }
            if at + width <= oldest || at > now {
                for k in 0..4 {
                    set(bucket(b) + k, 0);
                }
                continue;
            }
            total += get(bucket(b) + 1);
            failed += get(bucket(b) + 2);
            slowed += get(bucket(b) + 3);
        }
        if let Some(opened_for) = delta.opened_for {
            // A process's breaker opened on its own: open for everyone, and the counts start
            // afresh.
            open_until = open_until.max(now + (opened_for / 1000).max(1));
            consec = 0;
            clear();
            (total, failed) = (0, 0);
        }
        if open_until <= now {
            let mut trip = consec >= t.failure_threshold;
            if !trip && total >= t.minimum_calls && total > 0 {
                let over =
                    |rate: Option<f64>, n: u64| rate.is_some_and(|r| n as f64 >= r * total as f64);
                trip = over(t.failure_rate, failed) || over(t.slow_rate, slowed);
            }
            if trip {
                open_until = now + t.recovery_us;
                consec = 0;
                clear();
                (total, failed) = (0, 0);
            }
        }
        set(1, consec);
        set(2, open_until);
        [
            open_until.saturating_sub(now) as i64,
            consec as i64,
            total as i64,
            failed as i64,
        ]
    }
}

/// Removes the breaker files of host store `store`; how many there were.
pub fn remove_all(store: &str) -> Result<usize, Error> {
    let prefix = path_of(&format!("{store}.breaker-0"))?;
    let dir = prefix
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let stem = format!("seawall-{store}.breaker-");
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&stem)
                && std::fs::remove_file(e.path()).is_ok()
            {
                n += 1;
            }
        }
    }
    Ok(n)
}
