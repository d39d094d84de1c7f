#!/usr/bin/env bash
# Bounded soak of the release binary (see examples/soak.rs). Loopback only; stops by itself.
#   scripts/soak.sh [REQUESTS=5000] [CONCURRENCY=16]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin mtls-gateway --example soak
exec target/release/examples/soak target/release/mtls-gateway "${1:-5000}" "${2:-16}"
