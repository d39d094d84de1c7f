#!/usr/bin/env bash
# End-to-end load benchmark: mtls-gateway and nginx (the reference: terminate mTLS and forward)
# side by side, in one run, with the same PKI, upstream, load generator and CPU pinning.
# Method and targets: ../shared/BENCH.md; results go to docs/performance.md.
#
#   benches/load/run.sh            (PHASE_SECONDS=10 CONCURRENCY=32 IDLE_CONNECTIONS=10000)
#   ONLY="newconn keepalive"       phases of the fresh run and of nginx
#   MODES="cache cache_redis"      which gateway runs (default: fresh reuse cache cache_redis es256)
#
# Loopback only; bounded in time (about 3 minutes plus the release build); stops only what it
# started. Server side (gateway or nginx) on core 0; load generator and upstream on core 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
PHASE=${PHASE_SECONDS:-10}
C=${CONCURRENCY:-32}
IDLE=${IDLE_CONNECTIONS:-10000}
# 10,000 idle connections need more descriptors than the usual soft limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

BENCH_NAME=bench
# shellcheck source=common.sh
. benches/load/common.sh

"$GW" dev-pki --out "$work/pki" >/dev/null
P=$work/pki
UPORT=$(free_port); GPORT=$(free_port); NPORT=$(free_port)

taskset -c 1 "$LG" upstream "127.0.0.1:$UPORT" "$P/server.pem" "$P/server-key.pem" &
started+=($!)
wait_port "$UPORT"

results=$work/results.jsonl
phase() { # system label mode concurrency seconds url pids
  local out
  out=$(taskset -c 1 "$LG" run "$3" "$6" "$P/ca.pem" "$P/client.pem" "$P/client-key.pem" "$5" "$4" "$7")
  echo "{\"system\":\"$1\",\"label\":\"$2\",\"result\":$out}" >> "$results"
  echo "  $1 $2: $out"
}

gateway_config() { # extra upstream lines, extra client lines; CREDENTIAL= the credential's lines
  local credential=${CREDENTIAL:-cert = \"pki/signing.pem\"
key = \"pki/signing-key.pem\"}
  cat > "$work/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:$GPORT"
cert = "pki/server.pem"
key = "pki/server-key.pem"
client_ca = ["pki/ca.pem"]

[limits]
header_read_timeout = "120s"
idle_timeout = "120s"
max_connections = 20000
# All load comes from one address here.
max_connections_per_peer = 20000

$1
ca = ["pki/ca.pem"]

[credentials.bench]
$credential

[[clients]]
client_id = "11111111-2222-3333-4444-555555555555"
upstream = "bench"
credential = "bench"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=legacy-client,O=mtls-gateway dev"
$2
TOML
}

run_gateway() { # label, then phases...
  local label=$1; shift
  TOKIO_WORKER_THREADS=1 taskset -c 0 "$GW" --log-level error serve -c "$work/gateway.toml" &
  local pid=$!
  started+=($pid)
  wait_port "$GPORT"
  for ph in "$@"; do
    case $ph in
      newconn) phase gateway "$label" newconn "$C" "$PHASE" "https://127.0.0.1:$GPORT/token" "$pid" ;;
      nagle1|nagle2) phase gateway "$label" "$ph" 1 "$PHASE" "https://127.0.0.1:$GPORT/token" "$pid" ;;
      keepalive) phase gateway "$label" keepalive "$C" "$PHASE" "https://127.0.0.1:$GPORT/token" "$pid" ;;
      c1) phase gateway "$label" keepalive 1 "$PHASE" "https://127.0.0.1:$GPORT/token" "$pid" ;;
      idle) phase gateway "$label" idle "$IDLE" "$PHASE" "https://127.0.0.1:$GPORT/token" "$pid" ;;
    esac
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

MODES=${MODES:-fresh reuse cache cache_redis es256}
wants() { [[ " $MODES " == *" $1 "* ]]; }

echo "== mtls-gateway (fresh assertion per request)"
GENERIC="[upstreams.bench]
type = \"generic\"
token_endpoint = \"https://127.0.0.1:$UPORT/token\""
gateway_config "$GENERIC" ""
! wants fresh || run_gateway fresh ${ONLY:-nagle1 nagle2 newconn keepalive c1 idle}

echo "== mtls-gateway (reuse_assertion = true)"
gateway_config "[upstreams.bench]
type = \"entra\"
authority = \"https://127.0.0.1:$UPORT\"
tenant = \"bench\"
reuse_assertion = true" ""
! wants reuse || [ -n "${ONLY:-}" ] || run_gateway reuse newconn keepalive

echo "== mtls-gateway (fresh ES256 assertion per request, P-256 credential, generic upstream)"
CREDENTIAL='cert = "pki/client-selfsigned.pem"
key = "pki/client-selfsigned-key.pem"
alg = "ES256"' gateway_config "$GENERIC" ""
! wants es256 || run_gateway es256 newconn keepalive

echo "== mtls-gateway (cache_tokens = true)"
gateway_config "$GENERIC" "cache_tokens = true"
! wants cache || run_gateway cache keepalive

if wants cache_redis && command -v redis-server >/dev/null 2>&1; then
  echo "== mtls-gateway (cache_tokens = true, [state] on redis-server $(redis-server --version | grep -o 'v=[0-9.]*' | cut -c3-))"
  RPORT=$(free_port)
  taskset -c 1 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null &
  started+=($!)
  wait_port "$RPORT"
  gateway_config "$GENERIC" "cache_tokens = true

[state]
store = \"redis\"
redis_url = \"redis://127.0.0.1:$RPORT/0\""
  MTLS_GATEWAY_STATE_KEY=$(head -c 32 /dev/urandom | base64) run_gateway cache_redis keepalive
fi

echo "== nginx $(nginx -v 2>&1 | sed 's/.*\///') (terminates mTLS, forwards; signs nothing)"
start_nginx "$NPORT"
pids=$nginx_pids
for ph in ${ONLY:-nagle1 nagle2 newconn keepalive c1 idle}; do
  case $ph in
    newconn) phase nginx reference newconn "$C" "$PHASE" "https://127.0.0.1:$NPORT/token" "$pids" ;;
    nagle1|nagle2) phase nginx reference "$ph" 1 "$PHASE" "https://127.0.0.1:$NPORT/token" "$pids" ;;
    keepalive) phase nginx reference keepalive "$C" "$PHASE" "https://127.0.0.1:$NPORT/token" "$pids" ;;
    c1) phase nginx reference keepalive 1 "$PHASE" "https://127.0.0.1:$NPORT/token" "$pids" ;;
    idle) phase nginx reference idle "$IDLE" "$PHASE" "https://127.0.0.1:$NPORT/token" "$pids" ;;
  esac
done

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def get(system, label, mode, conc=None):
    for r in rows:
        res = r["result"]
        if r["system"] == system and r["label"] == label and res["mode"] == mode and (conc is None or res.get("concurrency", res.get("connections")) == conc or mode == "idle"):
            return res
    return None
C = max(r["result"].get("concurrency", 0) for r in rows)
n_new, n_ka, n_c1, n_idle = (get("nginx", "reference", "newconn"), get("nginx", "reference", "keepalive", C), get("nginx", "reference", "keepalive", 1), get("nginx", "reference", "idle"))
print()
print("| phase | mtls-gateway | nginx | ratio | target |")
print("| --- | --- | --- | --- | --- |")
def line(phase, g, n, key, fmt, target, invert=False):
    if not g or not n:
        return
    gv, nv = float(g[key]), float(n[key])
    ratio = (gv / nv) if nv else float("nan")
    print(f"| {phase} | {fmt.format(gv)} | {fmt.format(nv)} | {ratio:.2f} × | {target} |")
line("newconn, server CPU µs/request (fresh assertion)", get("gateway", "fresh", "newconn"), n_new, "cpu_us_per_req", "{:.0f} µs", "≤ 0.75 ×")
line("newconn, req/s (fresh assertion)", get("gateway", "fresh", "newconn"), n_new, "rps", "{:.0f}", "—")
line("newconn, server CPU µs/request (reuse_assertion)", get("gateway", "reuse", "newconn"), n_new, "cpu_us_per_req", "{:.0f} µs", "—")
line("newconn, server CPU µs/request (fresh ES256 assertion)", get("gateway", "es256", "newconn"), n_new, "cpu_us_per_req", "{:.0f} µs", "—")
line("keepalive, req/s (fresh assertion)", get("gateway", "fresh", "keepalive", C), n_ka, "rps", "{:.0f}", "≥ 1,900 req/s (0.8 × signing floor)")
line("keepalive, req/s (fresh ES256 assertion)", get("gateway", "es256", "keepalive", C), n_ka, "rps", "{:.0f}", "—")
line("keepalive, server CPU µs/request (fresh ES256)", get("gateway", "es256", "keepalive", C), n_ka, "cpu_us_per_req", "{:.0f} µs", "—")
line("keepalive, req/s (reuse_assertion)", get("gateway", "reuse", "keepalive", C), n_ka, "rps", "{:.0f}", "≥ 0.5 ×")
line("keepalive, req/s (token cache hit)", get("gateway", "cache", "keepalive", C), n_ka, "rps", "{:.0f}", "≥ 0.8 ×")
line("keepalive, req/s (token cache hit, [state] on Redis)", get("gateway", "cache_redis", "keepalive", C), n_ka, "rps", "{:.0f}", "≥ 0.5 ×")
line("keepalive, server CPU µs/request (fresh)", get("gateway", "fresh", "keepalive", C), n_ka, "cpu_us_per_req", "{:.0f} µs", "—")
for m, what in (("nagle1", "one write"), ("nagle2", "head and body in two writes")):
    g, n = get("gateway", "fresh", m), get("nginx", "reference", m)
    if g and n:
        print(f"| newconn-c1 p50, Nagle-on client, {what} | {g['p50_ms']:.2f} ms | {n['p50_ms']:.2f} ms | +{g['p50_ms']-n['p50_ms']:.2f} ms | ≤ nginx + 0.6 ms |")
        print(f"| newconn-c1 p99, Nagle-on client, {what} | {g['p99_ms']:.2f} ms | {n['p99_ms']:.2f} ms | +{g['p99_ms']-n['p99_ms']:.2f} ms | — |")
g1 = get("gateway", "fresh", "keepalive", 1)
if g1 and n_c1:
    print(f"| keepalive-c1 p50 | {g1['p50_ms']:.2f} ms | {n_c1['p50_ms']:.2f} ms | +{g1['p50_ms']-n_c1['p50_ms']:.2f} ms | ≤ nginx + 0.6 ms |")
    print(f"| keepalive-c1 p99 | {g1['p99_ms']:.2f} ms | {n_c1['p99_ms']:.2f} ms | +{g1['p99_ms']-n_c1['p99_ms']:.2f} ms | ≤ nginx + 1.5 ms |")
gk = get("gateway", "fresh", "keepalive", C)
if gk:
    print(f"| tail at c={C}: own p99 / p50 | {gk['p99_ms']:.2f} / {gk['p50_ms']:.2f} ms = {gk['p99_ms']/max(gk['p50_ms'],1e-9):.2f} × | {n_ka['p99_ms']:.2f} / {n_ka['p50_ms']:.2f} ms | — | ≤ 1.5 × |")
gi = get("gateway", "fresh", "idle")
if gi and n_idle:
    print(f"| idle-{gi['connections']} RSS | {gi['rss_kib']/1024:.1f} MiB | {n_idle['rss_kib']/1024:.1f} MiB | {gi['rss_kib']/max(n_idle['rss_kib'],1):.2f} × | ≤ 1 × |")
errors = sum(r["result"].get("errors", 0) for r in rows)
print(f"\nerrors across all phases: {errors}")
PY
