//! The one error type of the core. The Python bindings turn it into `ValueError`.

use std::fmt;

/// What can go wrong when configuring or calling a limiter.
///
/// ```
/// use seawall::error::Error;
///
/// let e = Error::invalid("capacity", "must be at least 1, got 0");
/// assert_eq!(e.to_string(), "capacity must be at least 1, got 0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// An argument outside its allowed range; names the parameter.
    InvalidArgument {
        /// The parameter's name as the user wrote it.
        param: &'static str,
        /// What was wrong, and what is allowed.
        message: String,
    },
    /// The operating system refused an operation (opening a shared-memory segment): the
    /// message says what and how to fix it; `permission` tells a permission error apart.
    System {
        /// What failed, and what to do about it.
        message: String,
        /// Whether it was refused for lack of permission.
        permission: bool,
    },
}

impl Error {
    /// An [`Error::InvalidArgument`] for `param`.
    pub fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            param,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument { param, message } => write!(f, "{param} {message}"),
            Error::System { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}
