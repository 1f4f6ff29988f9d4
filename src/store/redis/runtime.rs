//! The one tokio runtime that drives every Redis connection of the process.
//!
//! One worker thread: the work on it is I/O multiplexing, and the machines this runs on give the
//! Python thread and Redis the other cores. Made on first use, and made again in a child after
//! `fork()` (a runtime's threads do not survive a fork; gunicorn's `--preload` forks after import).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Once, OnceLock};

use parking_lot::Mutex;
use tokio::runtime::{Builder, Handle, Runtime};

struct Owned {
    pid: u32,
    runtime: &'static Runtime,
}

static RUNTIME: Mutex<Option<Owned>> = Mutex::new(None);

/// This process's id, cached: 0 until first asked for.
static PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn forked_child() {
    // Async-signal-safe: one atomic store. The next `pid()` reads the child's id.
    PID.store(0, Ordering::Relaxed);
}

/// This process's id, refreshed in a child after `fork()`. One relaxed atomic load in the
/// common case, where `std::process::id()` is a `getpid` system call each time (glibc stopped
/// caching it): every pool and connection compares it with the id it was made in, so that a
/// forked child never uses its parent's sockets.
///
/// ```
/// assert_eq!(seawall::store::redis::runtime::pid(), std::process::id());
/// ```
#[inline]
pub fn pid() -> u32 {
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic.
        unsafe {
            libc::pthread_atfork(None, None, Some(forked_child));
        }
    });
    let p = std::process::id();
    PID.store(p, Ordering::Relaxed);
    p
}

/// The runtime's handle, made (again, after a fork) if needed.
///
/// ```
/// let answer = seawall::store::redis::runtime::handle().block_on(async { 6 * 7 });
/// assert_eq!(answer, 42);
/// ```
pub fn handle() -> Handle {
    let pid = pid();
    let mut guard = RUNTIME.lock();
    if let Some(owned) = &*guard {
        if owned.pid == pid {
            return owned.runtime.handle().clone();
        }
    }
    let runtime = Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("seawall-redis")
        .enable_all()
        .build()
        .expect("a tokio runtime with one thread");
    // Leaked on purpose: it lives as long as the process, and a forked parent's copy must never
    // be dropped in the child (its threads are not there).
    let runtime: &'static Runtime = Box::leak(Box::new(runtime));
    *guard = Some(Owned { pid, runtime });
    runtime.handle().clone()
}

/// Installs rustls' ring provider once, for `rediss://`.
pub fn install_crypto() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        // An error means another library installed one first; that one serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
