//! `kasagi serve`, `kasagi bots` and `kasagi token` as processes talking over 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use assert_cmd::cargo::cargo_bin;
use predicates::prelude::*;

/// A `kasagi serve` child process and the address it listens on.
struct Serve {
    child: Child,
    addr: String,
    log: std::sync::mpsc::Receiver<String>,
    _data: tempfile::TempDir,
}

impl Serve {
    fn start(extra: &[&str]) -> Serve {
        // Each server persists into its own directory, never the working tree.
        let data = tempfile::tempdir().unwrap();
        let mut args = vec!["serve", "--bind", "127.0.0.1:0"];
        if !extra.contains(&"--data-dir") {
            args.extend(["--data-dir", data.path().to_str().unwrap()]);
        }
        let mut child = Command::new(cargo_bin("kasagi"))
            .args(&args)
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("kasagi serve starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("serve prints its address");
            if let Some(rest) = line.strip_prefix("kasagi serving on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        Serve {
            child,
            addr,
            log: rx,
            _data: data,
        }
    }

    /// Sends SIGTERM and returns the exit status and the rest of stderr.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.log.try_iter().collect();
        (status, rest.join("\n"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Runs `kasagi bots --json` against `addr` with `args` and returns its summary.
fn bots(addr: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(cargo_bin("kasagi"))
        .args(["bots", "--server", addr, "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bots_sync_with_an_insecure_server_which_stops_gracefully_on_sigterm() {
    let serve = Serve::start(&["--insecure"]);
    let summary = bots(
        &serve.addr,
        &[
            "--insecure",
            "--count",
            "3",
            "--duration",
            "4",
            "--remote-latency",
        ],
    );
    assert_eq!(summary["clients"], 3);
    assert_eq!(summary["connected"], 3, "{summary}");
    assert_eq!(summary["desyncs"], 0);
    assert!(summary["bytes_per_client_per_sec"].as_f64().unwrap() > 0.0);
    // Each bot issues its first command two seconds in; the server acknowledges it.
    assert!(
        summary["commands_acked"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    for key in ["resyncs", "reconnects", "latency_p50_ms", "latency_p99_ms"] {
        assert!(summary.get(key).is_some(), "{key} missing");
    }
    // Timed at arrival, a confirmation is never later than at the harness's look.
    let ms = |key: &str| {
        summary[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {summary}"))
    };
    assert!(
        ms("remote_latency_at_arrival_p99_ms") <= ms("remote_latency_p99_ms"),
        "{summary}"
    );
    let (status, log) = serve.terminate();
    assert!(status.success(), "exit {status:?}: {log}");
    assert!(log.contains("kasagi stopped"), "{log}");
}

#[test]
fn a_secure_server_creates_a_private_key_and_bots_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = Serve::start(&["--data-dir", data.to_str().unwrap()]);
    let key = data.join("server.key");
    let meta = std::fs::metadata(&key).expect("the key file exists");
    assert_eq!(meta.len(), 32);
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let key_arg = key.to_str().unwrap();
    let summary = bots(
        &serve.addr,
        &["--count", "2", "--duration", "2", "--key-file", key_arg],
    );
    assert_eq!(summary["connected"], 2, "{summary}");
    // Insecure bots cannot get into a secure server.
    let summary = bots(
        &serve.addr,
        &["--insecure", "--count", "1", "--duration", "2"],
    );
    assert_eq!(summary["connected"], 0, "{summary}");
    // Tokens can be minted for other clients.
    assert_cmd::Command::cargo_bin("kasagi")
        .unwrap()
        .args([
            "token",
            "--client-id",
            "9",
            "--server",
            &serve.addr,
            "--key-file",
        ])
        .arg(&key)
        .assert()
        .success()
        .stdout(predicate::str::is_match("^[0-9a-f]{200,}\n$").unwrap());
}

#[test]
fn bad_serve_and_token_invocations_exit_2() {
    let cmd = || assert_cmd::Command::cargo_bin("kasagi").unwrap();
    cmd().args(["serve", "--bind", "nowhere"]).assert().code(2);
    cmd()
        .args([
            "serve",
            "--insecure",
            "--world",
            "assets/worlds/atlantis.ron",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("atlantis.ron"));
    cmd()
        .args([
            "token",
            "--client-id",
            "1",
            "--key-file",
            "/nonexistent/server.key",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("kasagi serve"));
    cmd().args(["bots", "--count", "0"]).assert().code(2);
}
