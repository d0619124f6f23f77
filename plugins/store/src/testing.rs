//! Test support: a throwaway `redis-server` on a free loopback port.
//!
//! Only std; compiled into every build so that integration tests (and the
//! `kasagi` crate's) can use it. Tests that need Redis must fail, not skip,
//! when `redis-server` is missing: [`RedisServer::start`] says how to install it.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The error [`RedisServer::start`] returns when `redis-server` is not on `PATH`.
pub const REDIS_SERVER_MISSING: &str = "redis-server not found on PATH: install it with \
     `apt-get update && apt-get install -y redis-server` (the project's .ci/run does this)";

/// How long a started server has to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Start attempts (on fresh ports) before [`RedisServer::start`] gives up.
const START_ATTEMPTS: usize = 5;

/// A `redis-server` child process on `127.0.0.1`, without persistence
/// (`--save '' --appendonly no`): a restart starts empty. Killed on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`
    /// (at most 5 s per attempt; up to 5 attempts on fresh ports, in case
    /// another process takes the port first). Fails with
    /// [`REDIS_SERVER_MISSING`] if `redis-server` is not on `PATH`.
    pub fn start() -> io::Result<Self> {
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match spawn_ready(port) {
                Ok(child) => {
                    return Ok(Self {
                        port,
                        child: Some(child),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// The port it listens on (the same across [`RedisServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (`SIGKILL`, no shutdown save) and reaps it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs, then starts a new one on the same port
    /// and waits until it answers `PING` (retrying for up to 5 s while the
    /// port is still being released). The new server starts empty.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match spawn_ready(self.port) {
                Ok(child) => {
                    self.child = Some(child);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound || Instant::now() > deadline => {
                    return Err(e);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago: bind port 0, note the port, let it go.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Spawns `redis-server` on `port` and waits for `+PONG`; kills it on failure.
fn spawn_ready(port: u16) -> io::Result<Child> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--dir", &std::env::temp_dir().to_string_lossy()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                io::Error::new(io::ErrorKind::NotFound, REDIS_SERVER_MISSING)
            }
            _ => io::Error::new(e.kind(), format!("starting redis-server: {e}")),
        })?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "redis-server on port {port} exited at startup ({status})"
            )));
        }
        if pong(port) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("redis-server on port {port} did not answer PING within {READY_TIMEOUT:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the server on `port` answers `PING` with `+PONG`.
fn pong(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
