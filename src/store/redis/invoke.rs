//! How a script call names the decision script: as a Redis 7 function where the server allows
//! it ([`Invoke::Function`]: `FUNCTION LOAD` of [`decide_library`] once, then `FCALL`), since a
//! function's local functions are made once per load, not on every call as `EVALSHA` makes
//! them (about 1.4 µs of the script's 6.6 µs in Redis). A server without functions (Redis < 7,
//! an ACL that denies `FCALL` or `FUNCTION LOAD`) is called by `EVALSHA`, then `EVAL`; a
//! function lost to a restart or a `FUNCTION FLUSH` is loaded again ([`Invoke::next`]).

use std::sync::atomic::{AtomicBool, Ordering};

use redis::{Cmd, RedisError};

use super::script::decide_hash;

/// The name of the decision script's function, and of the library that registers it:
/// `seawall_decide_` and the first 16 hex digits of [`decide_hash`], so that seawall builds
/// with different scripts on one Redis each load their own and never replace another's.
pub fn decide_function() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| format!("seawall_decide_{}", &decide_hash()[..16]))
}

/// The library `FUNCTION LOAD` takes: the decision script registered as [`decide_function`].
///
/// ```
/// use seawall::store::redis::invoke::{decide_function, decide_library};
///
/// let lib = decide_library();
/// assert!(lib.starts_with(&format!("#!lua name={}\n", decide_function())));
/// assert!(lib.contains(&format!("register_function('{}', decide_batch)", decide_function())));
/// ```
pub fn decide_library() -> &'static str {
    static LIB: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LIB.get_or_init(|| {
        let name = decide_function();
        format!(
            "#!lua name={name}\n{}{}\nredis.register_function('{name}', decide_batch)\n",
            include_str!("now.lua"),
            include_str!("decide.lua"),
        )
    })
}

/// `FUNCTION LOAD REPLACE` of [`decide_library`] (REPLACE: loading it again, as two clients
/// may at once, is not an error; the name holds the script's hash, so it replaces only itself).
pub fn load_command() -> Cmd {
    let mut c = redis::cmd("FUNCTION");
    c.arg("LOAD").arg("REPLACE").arg(decide_library());
    c
}

/// How a script call names the decision script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invoke {
    /// `FCALL` of [`decide_function`].
    Function,
    /// `FCALL` again, right after a `FUNCTION LOAD` ([`load_command`]) sent before it.
    Loaded,
    /// `EVALSHA` of [`decide_hash`].
    Hash,
    /// `EVAL` of [`super::script::DECIDE_LUA`].
    Source,
}

impl Invoke {
    /// Whether a `FUNCTION LOAD` must go before this call.
    pub fn needs_load(self) -> bool {
        self == Invoke::Loaded
    }

    /// How to call again after this call was refused with `e`, or None if the error stands
    /// (it is not about how the script was named). A function Redis does not have (restarted,
    /// `FUNCTION FLUSH`) is loaded and called again; a server that refuses functions (no `FCALL`
    /// before Redis 7, an ACL without it) is marked in `functions` and called by `EVALSHA`; a
    /// function still missing after a load, or a script Redis does not have (`NOSCRIPT`), is
    /// sent with its source.
    ///
    /// ```
    /// use seawall::store::redis::invoke::{Functions, Invoke};
    ///
    /// // A server's error reply, as redis-rs reads it.
    /// let e = |s: &str| match redis::parse_redis_value(format!("-{s}\r\n").as_bytes()) {
    ///     Ok(redis::Value::ServerError(e)) => redis::RedisError::from(e),
    ///     other => panic!("{other:?}"),
    /// };
    /// let f = Functions::default();
    /// assert_eq!(Invoke::Function.next(&e("ERR Function not found"), &f), Some(Invoke::Loaded));
    /// assert_eq!(Invoke::Loaded.next(&e("ERR Function not found"), &f), Some(Invoke::Source));
    /// assert_eq!(Invoke::Hash.next(&e("NOSCRIPT No matching script."), &f), Some(Invoke::Source));
    /// assert_eq!(Invoke::Function.next(&e("ERR wrong number of arguments"), &f), None);
    /// assert_eq!(f.first(), Invoke::Function);
    /// let keys = e("NOPERM No permissions to access a key");
    /// assert_eq!(Invoke::Function.next(&keys, &f), None, "not about FCALL: the error stands");
    /// let old = e("ERR unknown command 'FCALL', with args beginning with: ");
    /// assert_eq!(Invoke::Function.next(&old, &f), Some(Invoke::Hash));
    /// assert_eq!(f.first(), Invoke::Hash, "remembered");
    /// let acl = e("NOPERM User app has no permissions to run the 'fcall' command");
    /// assert_eq!(Invoke::Function.next(&acl, &Functions::default()), Some(Invoke::Hash));
    /// ```
    pub fn next(self, e: &RedisError, functions: &Functions) -> Option<Invoke> {
        match self {
            Invoke::Function if function_missing(e) => Some(Invoke::Loaded),
            Invoke::Function if functions_refused(e) => {
                functions.refuse();
                Some(Invoke::Hash)
            }
            Invoke::Loaded if function_missing(e) || functions_refused(e) => Some(Invoke::Source),
            Invoke::Hash if is_noscript(e) => Some(Invoke::Source),
            _ => None,
        }
    }
}

/// Whether `e` is a `NOSCRIPT` reply: Redis restarted or its scripts were flushed.
pub fn is_noscript(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// `ERR Function not found`: Redis restarted, or its functions were flushed.
fn function_missing(e: &RedisError) -> bool {
    e.code() == Some("ERR")
        && e.detail()
            .is_some_and(|d| d.starts_with("Function not found"))
}

/// The server takes no `FCALL` from us: an unknown command (Redis < 7, or renamed away; a
/// proxy's "unsupported command"), or an ACL that denies it (`NOPERM … 'fcall' command`; a
/// `NOPERM` about keys is not this).
fn functions_refused(e: &RedisError) -> bool {
    let detail = e.detail().unwrap_or("").to_ascii_lowercase();
    match e.code() {
        Some("ERR") => {
            detail.starts_with("unknown command") || detail.starts_with("unsupported command")
        }
        Some("NOPERM") => detail.contains("'fcall'"),
        _ => false,
    }
}

/// Whether one server takes the decision script as a function, as its replies have shown: a
/// transport's connections share one, first trying [`Invoke::Function`].
#[derive(Debug, Default)]
pub struct Functions {
    refused: AtomicBool,
}

impl Functions {
    /// How the next call names the script: `FCALL`, or `EVALSHA` once functions were refused.
    pub fn first(&self) -> Invoke {
        if self.refused.load(Ordering::Relaxed) {
            Invoke::Hash
        } else {
            Invoke::Function
        }
    }

    /// Functions are refused (`FCALL` or `FUNCTION LOAD` failed): `EVALSHA` from now on.
    pub fn refuse(&self) {
        self.refused.store(true, Ordering::Relaxed);
    }
}
