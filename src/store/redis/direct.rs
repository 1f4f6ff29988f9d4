//! A connection the caller's own event loop drives: commands are written from the caller's
//! thread and replies are read when the loop sees the socket readable.
//!
//! Why: a decision through tokio crosses threads three times (the caller wakes the I/O thread,
//! the reply wakes it again, and it wakes the caller); on small machines each wake-up costs tens
//! of microseconds, more than the work. Here a decision costs what a plain client's round trip
//! costs. The script's replies are read straight from the bytes ([`read_decisions`]), any other
//! reply by redis-rs's own codec; only plain TCP and Unix sockets to one server take this path
//! (TLS, Cluster and Sentinel go through tokio).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisError, RedisResult, Value};
use tokio_util::codec::Decoder;

use super::reply::{read_decisions, Answer, Scan};

enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Sock {
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Sock::Tcp(s) => s,
            Sock::Unix(s) => s,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// One connection and the requests waiting on it, oldest first (Redis answers in order).
pub struct Direct<T> {
    sock: Sock,
    buf: BytesMut,
    /// Where [`Direct::receive`] reads, zeroed once here rather than on every read.
    chunk: Box<[u8]>,
    codec: redis::ValueCodec,
    /// The codec holds the start of a reply it has taken from `buf`: the rest is its too.
    codec_busy: bool,
    /// The process that made it (see [`super::runtime::pid`]): a forked child must not use it.
    pid: u32,
    /// The blocking connection's read timeout as set now, when a reply's later reads shortened it.
    shortened: bool,
    /// `command_timeout`, for a blocking connection.
    command_timeout: Option<Duration>,
    /// Requests sent and not yet answered.
    pub waiting: VecDeque<T>,
}

/// The authentication or database selection was refused: the URL (its credentials, its
/// database number) can never work, however long one waits. Carried inside an I/O error of
/// kind `PermissionDenied` from [`Direct::connect`]; [`connect_error`] turns it into a Redis
/// error that [`is_configuration_error`] recognizes.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// A failure of [`Direct::connect`] as a Redis error: refused credentials are
/// `AuthenticationFailed`, as redis-rs reports them.
pub fn connect_error(e: std::io::Error) -> RedisError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Refused>())
    {
        Some(Refused(msg)) => RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "refused",
            msg.clone(),
        )),
        None => e.into(),
    }
}

/// Whether `e` says the store can never work as configured rather than that it is down:
/// refused credentials (`WRONGPASS`, an `AUTH` Redis did not expect), an ACL that forbids the
/// script or its keys (`NOPERM`), a database number the server does not have. Waiting does
/// not heal these, so they are raised to the caller instead of being left to `on_error`.
pub fn is_configuration_error(e: &RedisError) -> bool {
    match e.kind() {
        redis::ErrorKind::AuthenticationFailed
        | redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm) => true,
        redis::ErrorKind::Extension => matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM")),
        // redis-rs's report of a refused SELECT.
        redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => e
            .detail()
            .is_some_and(|d| d.contains("DB index is out of range")),
        _ => false,
    }
}

/// Whether `url` can be served directly (one server, plain TCP or a Unix socket).
pub fn supported(url: &str) -> bool {
    url.into_connection_info()
        .is_ok_and(|i| matches!(i.addr(), ConnectionAddr::Tcp(..) | ConnectionAddr::Unix(..)))
}

fn io_err(e: RedisError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl<T> Direct<T> {
    /// Connects (blocking, at most `timeout` per step), authenticates and selects the database,
    /// then switches the socket to non-blocking.
    pub fn connect(url: &str, timeout: Duration) -> std::io::Result<Self> {
        Self::open(url, timeout, None)
    }

    /// Connects as [`Direct::connect`] but stays blocking, each read and write bounded by
    /// `command_timeout`: for [`Direct::call`] from a thread that may block.
    pub fn connect_blocking(
        url: &str,
        timeout: Duration,
        command_timeout: Duration,
    ) -> std::io::Result<Self> {
        Self::open(url, timeout, Some(command_timeout))
    }

    fn open(url: &str, timeout: Duration, blocking: Option<Duration>) -> std::io::Result<Self> {
        let info = url.into_connection_info().map_err(io_err)?;
        let mut sock = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let mut last = None;
                let mut found = None;
                for addr in (host.as_str(), *port).to_socket_addrs()? {
                    match TcpStream::connect_timeout(&addr, timeout) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let s = found
                    .ok_or_else(|| last.unwrap_or_else(|| std::io::Error::other("no address")))?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
                Sock::Tcp(s)
            }
            ConnectionAddr::Unix(path) => {
                let s = UnixStream::connect(path)?;
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
                Sock::Unix(s)
            }
            _ => return Err(std::io::Error::other("only TCP and Unix sockets")),
        };
        let settings = info.redis_settings();
        let mut handshake = Vec::new();
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            auth.arg(password);
            handshake.push(auth);
        }
        if settings.db() != 0 {
            handshake.push(redis::cmd("SELECT").arg(settings.db()).clone());
        }
        let mut parser = redis::Parser::new();
        for cmd in handshake {
            sock.io().write_all(&cmd.get_packed_command())?;
            if let Value::ServerError(e) = parser.parse_value(sock.io()).map_err(io_err)? {
                // AUTH or SELECT refused: no retry can succeed with this URL.
                let detail = e.details().unwrap_or("").trim_end_matches('.');
                let what = if settings.db() != 0 && detail.contains("DB index") {
                    format!("Redis refused database {} ({detail})", settings.db())
                } else {
                    format!("Redis refused the credentials ({} {detail})", e.code())
                };
                return Err(std::io::Error::new(
                    ErrorKind::PermissionDenied,
                    Refused(what),
                ));
            }
        }
        match (&sock, blocking) {
            (Sock::Tcp(s), None) => s.set_nonblocking(true)?,
            (Sock::Unix(s), None) => s.set_nonblocking(true)?,
            (Sock::Tcp(s), Some(t)) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))?;
            }
            (Sock::Unix(s), Some(t)) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))?;
            }
        }
        Ok(Direct {
            sock,
            buf: BytesMut::with_capacity(4096),
            chunk: vec![0; 16 * 1024].into_boxed_slice(),
            codec: redis::ValueCodec::default(),
            codec_busy: false,
            pid: super::runtime::pid(),
            shortened: false,
            command_timeout: blocking,
            waiting: VecDeque::new(),
        })
    }

    /// Whether an idle connection (nothing awaited on it) must not be used again: Redis closed
    /// it (an idle client timeout, `CLIENT KILL`, a restart), bytes nobody asked for arrived on
    /// it (they would be read as the next request's reply), or it was made in the parent of this
    /// forked process (its socket is shared with the parent). Looked at without reading or
    /// waiting before an idle connection is used again, since a command written to a closed one
    /// would be lost and its decision fall to `on_error` while Redis is up. One
    /// `recv(MSG_PEEK | MSG_DONTWAIT)`, about 1 µs here against some 50 µs for the decision.
    pub fn stale_while_idle(&self) -> bool {
        self.waiting.is_empty()
            && (self.pid != super::runtime::pid() || !self.buf.is_empty() || self.is_unusable())
    }

    /// Whether this connection was made in another process (this one is a forked child).
    pub fn inherited(&self) -> bool {
        self.pid != super::runtime::pid()
    }

    /// Closed, broken, or with unread bytes waiting.
    fn is_unusable(&self) -> bool {
        let mut byte = 0u8;
        // SAFETY: a one-byte buffer we own; MSG_PEEK | MSG_DONTWAIT neither consumes nor blocks.
        let n = unsafe {
            libc::recv(
                self.fd(),
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => true,
            n if n > 0 => true,
            _ => {
                let e = std::io::Error::last_os_error();
                !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
            }
        }
    }

    /// The socket, for the event loop to watch.
    pub fn fd(&self) -> RawFd {
        match &self.sock {
            Sock::Tcp(s) => s.as_raw_fd(),
            Sock::Unix(s) => s.as_raw_fd(),
        }
    }

    /// Sends one command and queues `waiter` for its reply. A command that does not fit in the
    /// socket's buffer at once means Redis has stopped reading: the connection is then unusable,
    /// and the error says so.
    pub fn send(&mut self, packed: &[u8], waiter: T) -> Result<(), (std::io::Error, T)> {
        let mut at = 0;
        while at < packed.len() {
            match self.sock.io().write(&packed[at..]) {
                Ok(0) => return Err((ErrorKind::WriteZero.into(), waiter)),
                Ok(n) => at += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if at == 0 => return Err((e, waiter)),
                Err(e) => {
                    // Half a command is on the wire: nothing after it can be framed.
                    return Err((std::io::Error::new(e.kind(), "partial write"), waiter));
                }
            }
        }
        self.waiting.push_back(waiter);
        Ok(())
    }

    /// Sends one command and waits for its reply, on a connection made by
    /// [`Direct::connect_blocking`], all of it within `command_timeout` (not each read: a reply
    /// that trickles in cannot hold the caller longer). After an error the connection must be
    /// dropped; after a success it may be used again only if nothing more arrived
    /// ([`Direct::stale_while_idle`]).
    pub fn call(&mut self, packed: &[u8]) -> RedisResult<Value> {
        match self.round_trip(packed, false)? {
            Answer::Other(v) => Ok(v),
            Answer::Decisions(_) => unreachable!("read only when asked for"),
        }
    }

    /// [`Direct::call`] of the decision script: its reply read as decisions when it is theirs.
    pub fn call_script(&mut self, packed: &[u8]) -> RedisResult<Answer> {
        self.round_trip(packed, true)
    }

    fn round_trip(&mut self, packed: &[u8], script: bool) -> RedisResult<Answer> {
        let started = std::time::Instant::now();
        let limit = self.command_timeout.unwrap_or(Duration::MAX);
        if self.shortened {
            // An earlier reply shortened the read timeout: restore it (rare: one syscall).
            self.set_read_timeout(limit)?;
        }
        self.sock.io().write_all(packed)?;
        let mut chunk = [0u8; 4096];
        let mut reads = 0u32;
        loop {
            if let Some(answer) = self.decode(script)? {
                return answer_result(answer);
            }
            if reads > 0 {
                // The reply comes in pieces: the next read may wait only what is left.
                let left = limit.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(std::io::Error::new(
                        ErrorKind::TimedOut,
                        format!("no whole reply within command_timeout ({limit:?})"),
                    )
                    .into());
                }
                self.set_read_timeout(left)?;
            }
            reads += 1;
            match self.sock.io().read(&mut chunk) {
                Ok(0) => return Err(std::io::Error::from(ErrorKind::UnexpectedEof).into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(std::io::Error::new(
                        ErrorKind::TimedOut,
                        format!("no reply within command_timeout ({limit:?})"),
                    )
                    .into())
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn set_read_timeout(&mut self, t: Duration) -> std::io::Result<()> {
        let t = Some(t.max(Duration::from_micros(1)));
        self.shortened = t != self.command_timeout;
        match &self.sock {
            Sock::Tcp(s) => s.set_read_timeout(t),
            Sock::Unix(s) => s.set_read_timeout(t),
        }
    }

    /// Reads what has arrived: each complete reply with its waiter, and an error if the
    /// connection is closed or broken (the waiters still queued then have no reply coming).
    /// The replies read before an error are returned with it, so that no waiter is lost: a
    /// reply nobody asked for, or bytes that are not RESP, end the connection after them.
    pub fn receive(&mut self) -> (Vec<(T, RedisResult<Answer>)>, Option<std::io::Error>) {
        let chunk = &mut self.chunk;
        let mut closed = None;
        loop {
            match self.sock.io().read(chunk) {
                Ok(0) => {
                    closed = Some(std::io::Error::from(ErrorKind::UnexpectedEof));
                    break;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    closed = Some(e);
                    break;
                }
            }
        }
        let mut out = Vec::new();
        loop {
            match self.decode(true) {
                Ok(Some(answer)) => match self.waiting.pop_front() {
                    Some(w) => out.push((w, answer_result(answer))),
                    None => return (out, Some(std::io::Error::other("a reply nobody asked for"))),
                },
                Ok(None) => break,
                Err(e) => return (out, Some(io_err(e))),
            }
        }
        (out, closed)
    }

    /// The next whole reply in `buf`, if there is one: read as the script's decisions when
    /// `script` and it is theirs, else by the codec (which keeps the start of a reply it has
    /// taken until the rest comes).
    fn decode(&mut self, script: bool) -> RedisResult<Option<Answer>> {
        if script && !self.codec_busy {
            match read_decisions(&self.buf) {
                Scan::Done(decisions, used) => {
                    self.buf.advance(used);
                    return Ok(Some(Answer::Decisions(decisions)));
                }
                Scan::Partial => return Ok(None),
                Scan::Other => {}
            }
        }
        let given = !self.buf.is_empty();
        let value = self.codec.decode(&mut self.buf)?;
        if value.is_some() {
            self.codec_busy = false;
        } else if given {
            // It may have taken what there was of the reply: the rest is its.
            self.codec_busy = true;
        }
        Ok(value.map(Answer::Other))
    }
}

/// An error reply as an error.
fn answer_result(answer: Answer) -> RedisResult<Answer> {
    match answer {
        Answer::Other(Value::ServerError(e)) => Err(RedisError::from(e)),
        a => Ok(a),
    }
}
