//! `kasagi bench SCENARIO`: one load scenario end to end, one JSON line out.
//!
//! Starts `kasagi serve` and `kasagi bots` as separate processes on
//! 127.0.0.1 (the same binary), lets both measure the same window (3 s of
//! warm-up after every client is synced, then 17 s), and merges what the
//! server measured (tick wall time, ticks run against expected, overruns,
//! process CPU) with what the bots measured (UDP bytes per client per second,
//! netcode header included; entity counts; checksums; latency). The targets
//! of the scenario are checked and reported, never asserted: the exit code
//! says only whether the run itself worked.

mod scenario;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::Args;
use serde_json::{Value, json};

pub use scenario::{ScenarioName, Setup};

use super::CliError;
use crate::sim::{Interest, WorldDef};

/// Arguments of `kasagi bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The scenario (see BENCHMARKS.md).
    #[arg(value_enum)]
    pub scenario: ScenarioName,
    /// Override the scenario's client count.
    #[arg(long, value_name = "N")]
    pub clients: Option<u32>,
    /// Warm-up after every client is synced, s.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub warmup: f64,
    /// The measured window, s.
    #[arg(long, value_name = "SECS", default_value_t = 17.0)]
    pub window: f64,
    /// Recovery: halfway through the window every client stops for this many
    /// seconds (the bots' `--stall`). A stall longer than the server's
    /// history (64 ticks, about 2 s at 30 Hz) costs every client a full state.
    #[arg(long, value_name = "SECS", value_parser = super::bots_cmd::stall_secs)]
    pub stall_clients: Option<f64>,
}

pub(super) fn run(args: &BenchArgs) -> Result<(), CliError> {
    let result = match args.scenario.setup() {
        Some(mut setup) => {
            if let Some(clients) = args.clients {
                setup.clients = clients.max(1);
            }
            run_network(args, &setup).map_err(CliError::Failed)?
        }
        None => run_sim(),
    };
    let result = check_targets(args.scenario, result);
    println!("{result}");
    Ok(())
}

/// S7: the 10k village as fast as possible, in this process.
fn run_sim() -> Value {
    let path = "assets/worlds/village-10k.ron";
    match WorldDef::load(path) {
        Ok(def) => {
            let s = super::simulate(&def, 3_000, false);
            json!({
                "world": path,
                "ticks": s.ticks,
                "ticks_per_sec": s.ticks_per_sec,
                "tick_p50_ms": s.tick_p50_us / 1_000.0,
                "tick_p99_ms": s.tick_p99_us / 1_000.0,
                "entities": s.entities,
            })
        }
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn run_network(args: &BenchArgs, setup: &Setup) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("locating the kasagi binary")?;
    let dir = std::env::temp_dir().join(format!("kasagi-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let port = {
        let probe = UdpSocket::bind("127.0.0.1:0")?;
        probe.local_addr()?.port()
    };
    let addr = format!("127.0.0.1:{port}");
    let def = WorldDef::load(setup.world).map_err(|e| anyhow!("{e}"))?;

    let mut server_cmd = Command::new(&exe);
    server_cmd.args(["serve", "--bind", &addr, "--store", "none", "--json"]);
    server_cmd
        .args(["--world", setup.world, "--data-dir"])
        .arg(&dir);
    world_flags(&mut server_cmd, setup);
    server_cmd.args(["--measure-clients", &setup.clients.to_string()]);
    server_cmd.args(window_flags(args));
    let server_log = dir.join("server.log");
    let mut server = server_cmd
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&server_log)?)
        .spawn()
        .context("starting kasagi serve")?;
    let server_lines = lines_of(&mut server);
    let outcome = (|| {
        wait_for_listening(&server_log, &mut server)?;
        let bots = run_bots(&exe, &dir, &addr, args, setup, &def)?;
        let report = wait_for_event(&server_lines, "load_window", Duration::from_secs(15))
            .context("the server never reported its load window (see its log)")?;
        Ok::<_, anyhow::Error>((report, bots))
    })();
    stop(&mut server);
    let (report, bots) =
        outcome.with_context(|| format!("server log: {}", server_log.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(merge(setup, &report, &bots, args))
}

/// `--warmup` and `--window`, the same for server and bots so both measure one window.
fn window_flags(args: &BenchArgs) -> [String; 4] {
    [
        "--warmup".into(),
        args.warmup.to_string(),
        "--window".into(),
        args.window.to_string(),
    ]
}

fn world_flags(cmd: &mut Command, setup: &Setup) {
    if let Some(e) = setup.entities {
        cmd.args(["--entities", &e.to_string()]);
    }
    if let Some(p) = setup.moving {
        cmd.args(["--moving", &p.to_string()]);
    }
    match setup.interest {
        Some(Interest::Off) => {
            cmd.args(["--interest", "off"]);
        }
        Some(Interest::Radius(r)) => {
            cmd.args(["--interest", &r.to_string()]);
        }
        None => {}
    }
}

/// Runs the bots to the end of their window and returns their JSON summary.
fn run_bots(
    exe: &Path,
    dir: &Path,
    addr: &str,
    args: &BenchArgs,
    setup: &Setup,
    def: &WorldDef,
) -> anyhow::Result<Value> {
    let mut cmd = Command::new(exe);
    cmd.args(["bots", "--server", addr, "--json", "--key-file"])
        .arg(dir.join("server.key"));
    // A minute to connect (the window starts anyway then), warm-up, window, slack.
    let cap = (60.0 + args.warmup + args.window + 30.0).ceil() as u64;
    cmd.args([
        "--room",
        &def.name,
        "--rooms",
        &setup.rooms.to_string(),
        "--count",
        &setup.clients.to_string(),
        "--duration",
        &cap.to_string(),
    ]);
    cmd.args(window_flags(args));
    if !setup.active {
        cmd.arg("--idle");
    }
    if setup.remote_latency {
        cmd.arg("--remote-latency");
    }
    if let Some(secs) = args.stall_clients {
        cmd.args(["--stall", &secs.to_string()]);
    }
    if let Some(n) = expected_entities(setup) {
        cmd.args(["--expect-entities", &n.to_string()]);
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("running kasagi bots")?;
    if !out.status.success() {
        return Err(anyhow!("kasagi bots failed: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("bots printed {line:?}"))
}

/// With interest off every client must hold the whole room: the swarm and every avatar.
fn expected_entities(setup: &Setup) -> Option<u64> {
    match (setup.interest, setup.entities) {
        (Some(Interest::Off), Some(e)) if setup.rooms == 1 => {
            Some(u64::from(e) + u64::from(setup.clients))
        }
        _ => None,
    }
}

fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

fn wait_for_listening(log: &PathBuf, server: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::fs::read_to_string(log).is_ok_and(|t| t.contains("kasagi serving on")) {
            return Ok(());
        }
        if let Some(status) = server.try_wait()? {
            return Err(anyhow!("kasagi serve exited early: {status}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(anyhow!("kasagi serve did not start listening within 30 s"))
}

fn wait_for_event(
    lines: &mpsc::Receiver<String>,
    event: &str,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left)?;
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["event"] == event
        {
            return Ok(v);
        }
    }
}

/// SIGTERM, then a bounded wait, then SIGKILL.
fn stop(child: &mut Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn merge(setup: &Setup, server: &Value, bots: &Value, args: &BenchArgs) -> Value {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let ticks = f(&server["ticks"]);
    let expected = f(&server["ticks_expected"]).max(1.0);
    let window = f(&server["window_secs"]).max(1e-9);
    let mut merged = json!({
        "setup": setup,
        "warmup_secs": args.warmup,
        "window_secs": window,
        "tick_p50_ms": server["tick_p50_ms"],
        "tick_p99_ms": server["tick_p99_ms"],
        "tick_max_ms": server["tick_max_ms"],
        "tick_cpu_p50_ms": server["tick_cpu_p50_ms"],
        "tick_cpu_p99_ms": server["tick_cpu_p99_ms"],
        "ticks": server["ticks"],
        "ticks_expected": server["ticks_expected"],
        "missed_tick_share": ((expected - ticks) / expected).max(0.0),
        "overruns": server["overruns"],
        "overrun_share": f(&server["overruns"]) / ticks.max(1.0),
        "server_cpu_secs": server["cpu_secs"],
        "server_cores_busy": f(&server["cpu_secs"]) / window,
        "server_cpu_ms_per_tick": f(&server["cpu_secs"]) * 1_000.0 / ticks.max(1.0),
        "rooms": server["rooms"],
        "clients": bots["clients"],
        "synced": bots["connected"],
        "all_synced_at_start": bots["all_synced_at_start"],
        "server_clients_at_start": server["clients_at_start"],
        "kb_per_client_per_sec": f(&bots["udp_bytes_per_client_per_sec"]) / 1_000.0,
        "message_kb_per_client_per_sec": f(&bots["bytes_per_client_per_sec"]) / 1_000.0,
        "datagrams_per_client_per_sec": bots["datagrams_per_client_per_sec"],
        "entities_expected": expected_entities(setup),
        "entities_ok": bots["entities_ok"],
        "entities_min": bots["entities_min"],
        "entities_max": bots["entities_max"],
        "checksums_ok": bots["checksums_ok"],
        "checksum_mismatches": bots["checksum_mismatches"],
        "desyncs": bots["desyncs"],
        "full_states": bots["full_states"],
        "change_sets_applied": bots["change_sets_applied"],
        "resyncs": bots["resyncs"],
        "latency_p50_ms": bots["latency_p50_ms"],
        "latency_p99_ms": bots["latency_p99_ms"],
        "remote_latency_p50_ms": bots["remote_latency_p50_ms"],
        "remote_latency_p99_ms": bots["remote_latency_p99_ms"],
        "remote_latency_samples": bots["remote_latency_samples"],
        "remote_latency_at_arrival_p50_ms": bots["remote_latency_at_arrival_p50_ms"],
        "remote_latency_at_arrival_p99_ms": bots["remote_latency_at_arrival_p99_ms"],
    });
    // Outside the literal: one more key and `json!` hits the recursion limit.
    for key in [
        "handover_p50_ms",
        "handover_p99_ms",
        "tick_late_p50_ms",
        "tick_late_p99_ms",
    ] {
        merged[key] = server[key].clone();
    }
    for key in [
        "missing_baselines",
        "missing_baseline_reports",
        "up_datagrams_per_client_per_sec",
    ] {
        merged[key] = bots[key].clone();
    }
    merged["stall_secs"] = json!(args.stall_clients);
    merged["up_kb_per_client_per_sec"] =
        json!(f(&bots["up_udp_bytes_per_client_per_sec"]) / 1_000.0);
    // Where the machine's cores went within the window (S5: rooms, network
    // thread and load generator share two).
    merged["room_cores"] = json!(f(&server["room_cpu_secs"]) / window);
    merged["network_cores"] = json!(f(&server["network_cpu_secs"]) / window);
    merged["bots_cores"] = json!(f(&bots["cpu_secs"]) / f(&bots["window_secs"]).max(1e-9));
    // Clients that fell behind, and late rooms, send fewer change sets: what
    // share of the client ticks were held back, and for the rooms' sake.
    merged["held_back_share"] = server["held_back_share"].clone();
    merged["shed_share"] = server["shed_share"].clone();
    merged
}

/// Adds the scenario name, each target with its measured value, and whether all were met.
fn check_targets(name: ScenarioName, mut result: Value) -> Value {
    let mut all = true;
    let targets: Vec<Value> = name
        .targets()
        .into_iter()
        .map(|t| {
            let value = result[t.metric].as_f64();
            let met = value.is_some_and(|v| if t.at_most { v <= t.limit } else { v >= t.limit });
            all &= met;
            json!({ "metric": t.metric, "limit": t.limit, "at_most": t.at_most, "value": value, "met": met })
        })
        .collect();
    result["scenario"] = serde_json::to_value(name).unwrap_or_default();
    result["targets"] = targets.into();
    result["targets_met"] = all.into();
    result
}
