#!/usr/bin/env bash
# Runs one load scenario of BENCHMARKS.md end to end and prints one JSON line:
#   benches/load/run.sh S1      (S1, S2, S2i, S4, S5, S7; extra flags pass through)
# Server and bots run as separate release processes on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
scenario="${1:?usage: benches/load/run.sh SCENARIO [--clients N] [--warmup S] [--window S]}"
shift
cargo build --release --quiet
exec ./target/release/kasagi bench "$(echo "$scenario" | tr '[:upper:]' '[:lower:]')" "$@"
