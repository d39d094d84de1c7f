# Sourced by run.sh and newconn.sh: the tools they need, the release build, a work folder
# removed on exit with every process started (append pids to `started`), and port helpers.
need() { # command, then the Debian package that has it
  command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; }
}
need nginx nginx-light
need taskset util-linux
cargo build --release --locked --bin mtls-gateway --example loadgen
GW=target/release/mtls-gateway
LG=target/release/examples/loadgen

work=$(mktemp -d "/tmp/mtls-gateway-${BENCH_NAME:-bench}.XXXXXX")
started=()
cleanup() {
  for p in "${started[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
