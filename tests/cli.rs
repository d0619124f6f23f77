//! The `kasagi` binary itself: summaries, JSON output and exit codes.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn kasagi() -> Command {
    Command::cargo_bin("kasagi").expect("the kasagi binary is built")
}

fn sim_json(extra: &[&str]) -> Value {
    let out = kasagi()
        .args([
            "sim",
            "--world",
            "assets/worlds/village.ron",
            "--ticks",
            "60",
            "--npcs",
            "200",
            "--json",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "exactly one JSON line: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn json_summary_has_the_documented_fields() {
    let v = sim_json(&[]);
    assert_eq!(v["ticks"], 60);
    assert_eq!(v["entities"], 200 + 160 + 50 + 16);
    assert_eq!(v["entities_by_kind"]["npcs"], 200);
    let hash = v["state_hash"].as_str().unwrap();
    assert_eq!(hash.len(), 16);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    for key in ["ticks_per_sec", "tick_p50_us", "tick_p99_us"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key} = {}", v[key]);
    }
    assert!(v["tick_p50_us"].as_f64() <= v["tick_p99_us"].as_f64());
}

#[test]
fn seed_decides_the_state_hash() {
    let a = sim_json(&["--seed", "5"]);
    let b = sim_json(&["--seed", "5"]);
    let c = sim_json(&["--seed", "6"]);
    assert_eq!(a["state_hash"], b["state_hash"]);
    assert_ne!(a["state_hash"], c["state_hash"]);
    assert_eq!(a["seed"], 5);
}

#[test]
fn human_summary_shows_hash_and_timings() {
    kasagi()
        .args(["sim", "--ticks", "30", "--npcs", "50"])
        .assert()
        .success()
        .stdout(predicate::str::contains("state_hash"))
        .stdout(predicate::str::contains("ticks/s"))
        .stdout(predicate::str::contains("p99"));
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let cases: [(&[&str], &str); 5] = [
        (&["sim", "--ticks", "0"], "--ticks"),
        (&["sim", "--ticks", "-3"], "--ticks"),
        (&["sim", "--ticks", "10", "--npcs", "50000000"], "--npcs"),
        (
            &[
                "sim",
                "--ticks",
                "10",
                "--world",
                "assets/worlds/atlantis.ron",
            ],
            "atlantis.ron",
        ),
        (&["sim"], "--ticks"),
    ];
    for (args, mention) in cases {
        kasagi()
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(mention));
    }
}

#[test]
fn a_malformed_world_file_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.ron");
    std::fs::write(&path, "(\n    name: \"x\",\n    seed: oops,\n)").unwrap();
    kasagi()
        .args(["sim", "--ticks", "10", "--world"])
        .arg(&path)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("broken.ron:3:"));
}

#[test]
fn help_teaches() {
    kasagi()
        .args(["sim", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("deterministic"))
        .stdout(predicate::str::contains("--seed"));
}
