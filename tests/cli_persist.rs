//! A real `kasagi serve` process killed with `kill -9` comes back where its
//! store says it was: same tick, same state hash. Run against the embedded
//! store and against a real Redis.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use assert_cmd::cargo::cargo_bin;
use kasagi_store::testing::RedisServer;
use serde_json::Value;

/// A `kasagi serve --json` child: its address, stderr lines and stdout JSON lines.
struct Serve {
    child: Child,
    addr: String,
    stdout: Receiver<Value>,
}

fn lines<R: std::io::Read + Send + 'static>(from: R) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

impl Serve {
    fn start(data: &std::path::Path, store: &str) -> Serve {
        let mut child = Command::new(cargo_bin("kasagi"))
            .args(["serve", "--insecure", "--json", "--bind", "127.0.0.1:0"])
            .args(["--data-dir", data.to_str().unwrap(), "--store", store])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kasagi serve starts");
        let stderr = lines(child.stderr.take().unwrap());
        let out = lines(child.stdout.take().unwrap());
        let (tx, stdout) = channel();
        std::thread::spawn(move || {
            for line in out {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let addr = loop {
            let line = stderr
                .recv_timeout(Duration::from_secs(60))
                .expect("serve prints its address");
            if let Some(rest) = line.strip_prefix("kasagi serving on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in stderr {});
        Serve {
            child,
            addr,
            stdout,
        }
    }

    /// The next stdout event named `event`.
    fn event(&self, event: &str) -> Value {
        loop {
            let v = self
                .stdout
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no {event} event"));
            if v["event"] == event {
                return v;
            }
        }
    }

    fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `kasagi ARGS`, which must succeed, and returns its stdout.
fn kasagi(args: &[&str]) -> Vec<u8> {
    let out = Command::new(cargo_bin("kasagi"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kasagi {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn bots(addr: &str) {
    kasagi(&[
        "bots",
        "--insecure",
        "--json",
        "--server",
        addr,
        "--count",
        "3",
        "--duration",
        "3",
    ]);
}

/// `kasagi replay --json`: what the store says the room is.
fn replay(store: &str) -> Value {
    let out = kasagi(&["replay", "--json", "--room", "village", "--store", store]);
    serde_json::from_slice(&out).unwrap()
}

fn kill_restart_and_compare(data: &std::path::Path, store: &str) {
    let mut first = Serve::start(data, store);
    bots(&first.addr);
    // Killed mid-flight: no shutdown, no final whole state.
    first.signal("-KILL");
    drop(first);

    let stored = replay(store);
    let recovery = &stored["recovery"];
    assert_eq!(recovery["stopped"], Value::Null, "{stored}");
    assert_eq!(recovery["diverged_at"], Value::Null, "{stored}");
    assert_eq!(recovery["tick"], recovery["latest_tick"], "{stored}");
    assert!(
        recovery["tick"].as_u64().unwrap() > 30,
        "3 s at 30 Hz: {stored}"
    );
    assert!(recovery["verified_ticks"].as_u64().unwrap() > 0, "{stored}");

    // The restarted server resumes the room at once, exactly there.
    let mut second = Serve::start(data, store);
    let recovered = second.event("recovered");
    assert_eq!(recovered["room"], "village");
    assert_eq!(recovered["exact"], true, "{recovered}");
    assert_eq!(
        recovered["tick"], recovery["tick"],
        "{recovered} vs {stored}"
    );
    assert_eq!(
        recovered["state_hash"], stored["state_hash"],
        "{recovered} vs {stored}"
    );

    // SIGTERM writes a final whole state: the store then needs no replay.
    std::thread::sleep(Duration::from_millis(500));
    let status = second.signal("-TERM");
    assert!(status.success(), "{status:?}");
    let after = replay(store);
    let tick = after["recovery"]["tick"].as_u64().unwrap();
    assert!(tick > recovery["tick"].as_u64().unwrap(), "{after}");
    assert_eq!(
        after["recovery"]["full_state_tick"].as_u64(),
        Some(tick),
        "{after}"
    );
}

#[test]
fn kill_9_with_the_embedded_store_resumes_at_the_last_persisted_tick() {
    let data = tempfile::tempdir().unwrap();
    let store = format!("file://{}", data.path().join("store").display());
    kill_restart_and_compare(data.path(), &store);
}

#[test]
fn kill_9_with_redis_resumes_at_the_last_persisted_tick() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let data = tempfile::tempdir().unwrap();
    kill_restart_and_compare(data.path(), &redis.url());
}
