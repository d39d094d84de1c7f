#!/usr/bin/env bash
# A/B of gateway binaries on new connections: each binary in "$@" serves one Entra upstream
# with reuse_assertion (REUSE=false: a fresh RS256 assertion), all started at once on core 0;
# `ab -E` (c = 32) drives them in turn, ROUNDS times, SECS seconds each, and each phase prints
# the server CPU per request. H1_SECOND=1 points the second binary at an upstream offering
# HTTP/1.1 only; PERF=1 records a perf profile of the first into /tmp/perf.data.
#
#   benches/load/abtest.sh target/release/mtls-gateway /path/to/other/mtls-gateway
set -euo pipefail
cd "$(dirname "$0")/../.."
LG=target/release/examples/loadgen
work=$(mktemp -d /tmp/mtls-ab.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; exit 1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
$1 dev-pki --out "$work/pki" >/dev/null
P=$work/pki; UPORT=$(free_port)
cat "$P/client.pem" "$P/client-key.pem" > "$work/ab-client.pem"
echo -n "grant_type=client_credentials&client_id=11111111-2222-3333-4444-555555555555&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default" > "$work/form"
taskset -c 1 "$LG" upstream "127.0.0.1:$UPORT" "$P/server.pem" "$P/server-key.pem" & pids+=($!)
wait_port $UPORT
UPORT2=$(free_port)
LOADGEN_UPSTREAM_H1=1 taskset -c 1 "$LG" upstream "127.0.0.1:$UPORT2" "$P/server.pem" "$P/server-key.pem" & pids+=($!)
wait_port $UPORT2
declare -A port gpid
i=0
for bin in "$@"; do
  i=$((i+1)); p=$(free_port); port[$i]=$p
  cat > "$work/g$i.toml" <<TOML
[server]
listen = "127.0.0.1:$p"
cert = "pki/server.pem"
key = "pki/server-key.pem"
client_ca = ["pki/ca.pem"]
${SERVER_EXTRA:-}
[limits]
header_read_timeout = "120s"
max_connections = 20000
max_connections_per_peer = 20000
[upstreams.bench]
type = "entra"
authority = "https://127.0.0.1:$( [ -n "${H1_SECOND:-}" ] && [ $i = 2 ] && echo $UPORT2 || echo $UPORT)"
tenant = "bench"
reuse_assertion = ${REUSE:-true}
ca = ["pki/ca.pem"]
[credentials.bench]
cert = "pki/signing.pem"
key = "pki/signing-key.pem"
[[clients]]
client_id = "11111111-2222-3333-4444-555555555555"
upstream = "bench"
credential = "bench"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=legacy-client,O=mtls-gateway dev"
TOML
  TOKIO_WORKER_THREADS=1 taskset -c 0 $bin --log-level ${LOGLEVEL:-error} serve -c "$work/g$i.toml" 2>>$work/log$i >/dev/null & gpid[$i]=$!; pids+=($!)
  wait_port $p
done
n=$i
declare -A sum cnt
[ -n "${PERF:-}" ] && { perf record -F 2000 -g --call-graph dwarf,16384 -p ${gpid[1]} -o /tmp/perf.data -- sleep $((SECS-1)) >/dev/null 2>&1 & }
for r in $(seq ${ROUNDS:-5}); do
  for i in $(seq $n); do
    b=$(ticks ${gpid[$i]})
    out=$(taskset -c 1 ab -q -E "$work/ab-client.pem" -t ${SECS:-4} -n 10000000 -c 32 -p "$work/form" -T application/x-www-form-urlencoded "https://127.0.0.1:${port[$i]}/token" 2>&1)
    a=$(ticks ${gpid[$i]})
    reqs=$(echo "$out" | awk '/Complete requests/ {print $3}')
    us=$(( (a-b)*10000*100/reqs/100 ))
    echo "round $r bin $i: $us µs/req ($reqs)"
  done
done
