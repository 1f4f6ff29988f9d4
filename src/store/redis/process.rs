//! A [`RedisStore`] per process. A store's connections belong to the tokio runtime of the
//! process that made them; after `fork()` (gunicorn's `--preload`) the child has neither that
//! runtime's threads nor a right to the parent's sockets, so it makes its own store at first use
//! and forgets the parent's (never drops it: dropping would touch the parent's connections).

use std::sync::Arc;

use parking_lot::Mutex;

use super::{runtime, RedisConfig, RedisStore};
use crate::error::Error;

/// The store of the current process, made again in a forked child.
///
/// ```
/// use std::time::Duration;
/// use seawall::store::redis::{process::ProcessStore, RedisConfig};
///
/// let config = RedisConfig {
///     url: "redis://127.0.0.1:6379/0".into(),
///     connect_timeout: Duration::from_millis(100),
///     command_timeout: Duration::from_millis(100),
/// };
/// let stores = ProcessStore::new(config).unwrap(); // connects on first use, not here
/// assert!(std::sync::Arc::ptr_eq(&stores.get(), &stores.get())); // one per process
/// ```
pub struct ProcessStore {
    config: RedisConfig,
    current: Mutex<(u32, Arc<RedisStore>)>,
}

impl ProcessStore {
    /// Checks `config` and prepares this process's store.
    pub fn new(config: RedisConfig) -> Result<Self, Error> {
        let store = Self::make(&config)?;
        Ok(ProcessStore {
            current: Mutex::new((runtime::pid(), Arc::new(store))),
            config,
        })
    }

    fn make(config: &RedisConfig) -> Result<RedisStore, Error> {
        let _guard = runtime::handle().enter();
        RedisStore::new(config.clone())
    }

    /// This process's store: one lock and one atomic load, or a new store in a forked child
    /// (making it checks only what was checked when the parent's was made, so it does not fail).
    pub fn get(&self) -> Arc<RedisStore> {
        let mut current = self.current.lock();
        let pid = runtime::pid();
        if current.0 != pid {
            if let Ok(store) = Self::make(&self.config) {
                std::mem::forget(std::mem::replace(&mut *current, (pid, Arc::new(store))));
            }
        }
        current.1.clone()
    }

    /// How Redis is reached.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }
}
