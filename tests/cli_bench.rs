//! `kasagi bench`: a load scenario end to end, server and bots as real processes over UDP.

use assert_cmd::Command;
use serde_json::Value;

fn kasagi() -> Command {
    Command::cargo_bin("kasagi").expect("the kasagi binary is built")
}

fn one_json_line(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one JSON line: {stdout}");
    serde_json::from_str(lines[0]).expect("the line is JSON")
}

/// `kasagi bench s1` with two clients, a short warm-up and `args` added.
fn small_s1(args: &[&str]) -> std::process::Output {
    kasagi()
        .args(["bench", "s1", "--clients", "2", "--warmup", "0.5"])
        .args(args)
        .output()
        .unwrap()
}

/// S1 in miniature: two clients that must each hold the whole swarm plus both
/// avatars, with checksums agreeing, and every figure of the report present.
#[test]
fn a_small_s1_run_reports_a_converged_measured_window() {
    let out = small_s1(&["--window", "2"]);
    let v = one_json_line(&out);
    assert_eq!(v["scenario"], "S1");
    assert_eq!(v["synced"], 2);
    assert_eq!(v["all_synced_at_start"], true);
    assert_eq!(v["entities_expected"], 1_002);
    assert_eq!(
        v["entities_ok"], 2,
        "every client holds the whole room: {v}"
    );
    assert_eq!(v["desyncs"], 0);
    assert_eq!(v["checksum_mismatches"], 0);
    assert!(v["checksums_ok"].as_u64().unwrap() > 0, "{v}");
    assert!(v["ticks"].as_u64().unwrap() > 30, "{v}");
    assert!(v["ticks_expected"].as_u64().unwrap() > 30, "{v}");
    for key in [
        "kb_per_client_per_sec",
        "tick_p50_ms",
        "tick_p99_ms",
        "tick_cpu_p50_ms",
        "tick_cpu_p99_ms",
        "server_cpu_secs",
        "datagrams_per_client_per_sec",
        "up_kb_per_client_per_sec",
        "up_datagrams_per_client_per_sec",
        "room_cores",
        "network_cores",
        "bots_cores",
        "handover_p50_ms",
    ] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}: {v}");
    }
    assert!(v["tick_p50_ms"].as_f64() <= v["tick_p99_ms"].as_f64());
    assert!(v["tick_cpu_p50_ms"].as_f64() <= v["tick_cpu_p99_ms"].as_f64());
    // The hand-over happens within the tick.
    assert!(
        v["handover_p50_ms"].as_f64() <= v["tick_p50_ms"].as_f64(),
        "{v}"
    );
    assert!(
        v["handover_p99_ms"].as_f64() <= v["tick_max_ms"].as_f64(),
        "{v}"
    );
    // The share of client ticks held back (clients that fell behind; none
    // should here, but a loaded test machine may make one).
    assert!(
        v["held_back_share"]
            .as_f64()
            .is_some_and(|share| (0.0..0.5).contains(&share)),
        "{v}"
    );
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    assert!(
        targets
            .iter()
            .all(|t| t["value"].is_number() && t["met"].is_boolean())
    );
}

/// Recovery: both clients stop for three seconds mid-window, longer than the
/// server's 64-tick history, so each needs a full state to come back; at
/// the end both hold the whole room again, and their checksums agree.
#[test]
fn clients_that_stall_past_the_history_come_back_whole() {
    let out = small_s1(&["--window", "6", "--stall-clients", "3"]);
    let v = one_json_line(&out);
    assert_eq!(v["stall_secs"], 3.0);
    assert_eq!(v["synced"], 2);
    assert_eq!(v["entities_ok"], 2, "every client holds the room: {v}");
    assert_eq!(v["desyncs"], 0);
    assert_eq!(v["checksum_mismatches"], 0);
    // One full state each on joining, at least one more after the stall.
    assert!(v["full_states"].as_u64().unwrap() >= 4, "{v}");
    assert!(
        kasagi()
            .args(["bots", "--stall", "3"])
            .assert()
            .failure()
            .get_output()
            .status
            .code()
            == Some(2),
        "--stall needs a window"
    );
    kasagi()
        .args(["bench", "s1", "--stall-clients", "100"])
        .assert()
        .code(2);
}

/// `kasagi sim` of the swarm world with `args` added.
fn swarm_sim(args: &[&str]) -> std::process::Output {
    kasagi()
        .args(["sim", "--world", "assets/worlds/swarm.ron"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn world_flags_shape_the_swarm_and_are_validated() {
    let out = swarm_sim(&[
        "--ticks",
        "30",
        "--entities",
        "321",
        "--moving",
        "0.5",
        "--json",
    ]);
    let v = one_json_line(&out);
    assert_eq!(v["entities_by_kind"]["swarm"], 321);
    assert_eq!(v["entities"], 321);

    // `=` keeps clap from reading a negative radius as a flag.
    for (arg, message) in [
        ("--moving=1.5", "swarm.moving"),
        ("--interest=sideways", "neither `off` nor a positive radius"),
        ("--interest=-3", "neither `off` nor a positive radius"),
    ] {
        let out = swarm_sim(&["--ticks", "1", arg]);
        assert_eq!(out.status.code(), Some(2), "{arg}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{arg}: {stderr}");
    }
}
