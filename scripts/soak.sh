#!/usr/bin/env bash
# Bounded soak of the release binary (see examples/soak.rs). Loopback only; stops by itself.
#   scripts/soak.sh [REQUESTS=5000] [CONCURRENCY=16]
#   SOAK_RATE=320 scripts/soak.sh 200000 16     (paced: about 10 minutes at 320 requests/s)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin mtls-gateway --example soak
exec target/release/examples/soak target/release/mtls-gateway "${1:-5000}" "${2:-16}"
