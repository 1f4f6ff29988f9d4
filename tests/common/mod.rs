//! What the Rust integration tests that talk to Redis share: a real `redis-server` on a free
//! loopback port (skipped, with a message, when `redis-server` is not on PATH).

#![allow(dead_code)] // each test file uses its own part

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use seawall::store::redis::RedisConfig;

/// A `redis-server` on a free loopback port, killed when dropped.
pub struct Server {
    child: Child,
    /// Its port.
    pub port: u16,
}

impl Server {
    /// Starts one, or None (after saying why) if `redis-server` is not installed.
    pub fn start() -> Option<Server> {
        Self::start_with(&[])
    }

    /// [`Server::start`] with more arguments for `redis-server` (`--rename-command` …).
    pub fn start_with(args: &[&str]) -> Option<Server> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!("skipped: redis-server is not on PATH");
            return None;
        };
        let server = Server { child, port };
        // Ready when it answers PING (it starts in milliseconds; give up after 10 s).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() {
                    assert_eq!(&buf, b"+PONG\r\n");
                    return Some(server);
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::yield_now();
        }
    }

    /// How to reach it.
    pub fn config(&self) -> RedisConfig {
        config(self.port, Duration::from_secs(5))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config for a server on `port`.
pub fn config(port: u16, command_timeout: Duration) -> RedisConfig {
    RedisConfig {
        url: format!("redis://127.0.0.1:{port}/0"),
        connect_timeout: Duration::from_secs(5),
        command_timeout,
    }
}

pub mod transport;
