//! A connection the caller's own event loop drives: commands are written from the caller's
//! thread and replies are read when the loop sees the socket readable.
//!
//! Why: a decision through tokio crosses threads three times (the caller wakes the I/O thread,
//! the reply wakes it again, and it wakes the caller); on small machines each wake-up costs tens
//! of microseconds, more than the work. Here a decision costs what a plain client's round trip
//! costs. Replies are framed and parsed by redis-rs's own codec; only plain TCP and Unix sockets
//! to one server take this path (TLS, Cluster and Sentinel go through tokio).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use bytes::BytesMut;
use redis::{ConnectionAddr, IntoConnectionInfo, RedisError, RedisResult, Value};
use tokio_util::codec::Decoder;

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
    codec: redis::ValueCodec,
    /// Requests sent and not yet answered.
    pub waiting: VecDeque<T>,
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
                return Err(std::io::Error::other(format!("{e:?}")));
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
            codec: redis::ValueCodec::default(),
            waiting: VecDeque::new(),
        })
    }

    /// Whether Redis has closed the connection while it was idle (an idle client timeout,
    /// `CLIENT KILL`, a restart): looked at without reading or waiting before an idle connection
    /// is used again, since a command written to a closed one would be lost and its decision
    /// fall to `on_error` while Redis is up. One `recv(MSG_PEEK | MSG_DONTWAIT)`, about 1 µs
    /// here against some 50 µs for the decision.
    pub fn closed_while_idle(&self) -> bool {
        self.waiting.is_empty() && self.is_closed()
    }

    fn is_closed(&self) -> bool {
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
            n if n > 0 => false,
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
    /// [`Direct::connect_blocking`]. After an error the connection must be dropped.
    pub fn call(&mut self, packed: &[u8]) -> RedisResult<Value> {
        self.sock.io().write_all(packed)?;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(value) = self.codec.decode(&mut self.buf)? {
                return match value {
                    Value::ServerError(e) => Err(RedisError::from(e)),
                    v => Ok(v),
                };
            }
            match self.sock.io().read(&mut chunk) {
                Ok(0) => return Err(std::io::Error::from(ErrorKind::UnexpectedEof).into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads what has arrived and returns each complete reply with its waiter. `Err` means the
    /// connection is closed or broken; the waiters still queued then have no reply coming.
    pub fn receive(&mut self) -> Result<Vec<(T, RedisResult<Value>)>, std::io::Error> {
        let mut chunk = [0u8; 16 * 1024];
        let mut closed = None;
        loop {
            match self.sock.io().read(&mut chunk) {
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
            match self.codec.decode(&mut self.buf) {
                Ok(Some(value)) => match self.waiting.pop_front() {
                    Some(w) => {
                        let r = match value {
                            Value::ServerError(e) => Err(RedisError::from(e)),
                            v => Ok(v),
                        };
                        out.push((w, r));
                    }
                    None => return Err(std::io::Error::other("a reply nobody asked for")),
                },
                Ok(None) => break,
                Err(e) => return Err(io_err(e)),
            }
        }
        match closed {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }
}
