#!/usr/bin/env bash
# New-connection cost, as BENCH.md asks for it: `ab -E` (OpenSSL, never resumes, a full mTLS
# handshake per request) against the gateway (fresh RS256 assertion; reuse_assertion) and
# nginx, ROUNDS rounds interleaved with the order alternating, the median of the per-round
# ratios of server CPU per request reported. Then the resuming phase: the project's load
# generator with its session cache on (`loadgen run resume`) against the gateway with
# `server.resumption = true` + reuse_assertion, and nginx with its session cache and tickets on.
# Each round also runs `loadgen floor` (the least work a token request on a new connection
# needs: handshake, possession proof, one signature or none, a static answer) for the floor ratio.
#
#   benches/load/newconn.sh        (ROUNDS=3 PHASE_SECONDS=10 CONCURRENCY=32)
#
# Server on core 0, load tool and upstream on core 1, loopback only; stops what it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
PHASE=${PHASE_SECONDS:-10}
C=${CONCURRENCY:-32}
BENCH_NAME=newconn
# shellcheck source=common.sh
. benches/load/common.sh
need ab apache2-utils
ticks() { local t=0; for p in ${1//,/ }; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }

"$GW" dev-pki --out "$work/pki" >/dev/null
P=$work/pki
cat "$P/client.pem" "$P/client-key.pem" > "$work/ab-client.pem"
echo -n "grant_type=client_credentials&client_id=11111111-2222-3333-4444-555555555555&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default" > "$work/form"
UPORT=$(free_port); PORT=$(free_port)
taskset -c 1 "$LG" upstream "127.0.0.1:$UPORT" "$P/server.pem" "$P/server-key.pem" &
started+=($!)
wait_port "$UPORT"
results=$work/results

gateway() { # label: fresh | reuse | resume
  local upstream
  upstream=$(entra_reuse_upstream "$UPORT")
  [ "$1" = fresh ] && upstream="[upstreams.bench]
type = \"generic\"
token_endpoint = \"https://127.0.0.1:$UPORT/token\""
  newconn_config "$work/gateway.toml" "$PORT" "$upstream" "$([ "$1" = resume ] && echo true || echo false)"
  TOKIO_WORKER_THREADS=1 taskset -c 0 "$GW" --log-level error serve -c "$work/gateway.toml" &
  server_pid=$!; started+=($server_pid); server_pids=$server_pid
  wait_port "$PORT"
}

nginx_up() { # resume: session cache and tickets on
  start_nginx "$PORT" "${1:-}"
  server_pid=$nginx_pid; server_pids=$nginx_pids
}

floor_up() { # fresh | reuse: the floor server of `loadgen floor` (one signature per request, or none)
  local signing=-
  [ "$1" = fresh ] && signing=$P/signing-key.pem
  taskset -c 0 "$LG" floor "127.0.0.1:$PORT" "$P/server.pem" "$P/server-key.pem" "$signing" &
  server_pid=$!; started+=($server_pid); server_pids=$server_pid
  wait_port "$PORT"
}

stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }

ab_phase() { # system label round
  local before after out n failed
  before=$(ticks "$server_pids")
  out=$(taskset -c 1 ab -q -E "$work/ab-client.pem" -t "$PHASE" -n 10000000 -c "$C" -p "$work/form" \
        -T application/x-www-form-urlencoded "https://127.0.0.1:$PORT/token" 2>&1) || true
  after=$(ticks "$server_pids")
  n=$(echo "$out" | awk '/^Complete requests/ {print $3}')
  failed=$(echo "$out" | awk '/^Failed requests/ {print $3}')
  local non2xx; non2xx=$(echo "$out" | awk '/^Non-2xx responses/ {print $3}')
  local us=$(( (after - before) * 10000 / (n > 0 ? n : 1) ))
  echo "$1 $2 $3 $us ${n:-0} ${failed:-0} ${non2xx:-0}" >> "$results"
  echo "  round $3 $1 $2 (ab): $us µs CPU/request, $n requests, failed ${failed:-0}, non-2xx ${non2xx:-0}"
}

lg_phase() { # system label round
  local out
  out=$(taskset -c 1 "$LG" run resume "https://127.0.0.1:$PORT/token" "$P/ca.pem" "$P/client.pem" "$P/client-key.pem" "$PHASE" "$C" "$server_pids")
  local us n errors resumed
  us=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cpu_us_per_req"])')
  n=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
  errors=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["errors"])')
  resumed=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["resumed"])')
  echo "$1 $2 $3 $us $n $errors 0" >> "$results"
  echo "  round $3 $1 $2 (loadgen resume): $us µs CPU/request, $n requests ($resumed resumed), errors $errors"
}

for r in $(seq "$ROUNDS"); do
  echo "== round $r"
  if (( r % 2 )); then order="nginx fresh reuse floor-fresh floor-reuse"; else order="floor-reuse floor-fresh reuse fresh nginx"; fi
  for s in $order; do
    case $s in
      nginx) nginx_up; ab_phase nginx newconn "$r"; stop_server ;;
      floor-*) floor_up "${s#floor-}"; ab_phase floor "${s#floor-}" "$r"; stop_server ;;
      *) gateway "$s"; ab_phase gateway "$s" "$r"; stop_server ;;
    esac
  done
  if (( r % 2 )); then order="nginx gateway"; else order="gateway nginx"; fi
  for s in $order; do
    case $s in
      nginx) nginx_up resume; lg_phase nginx resume "$r"; stop_server ;;
      gateway) gateway resume; lg_phase gateway resume "$r"; stop_server ;;
    esac
  done
done

python3 - "$results" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
cpu = {(s, l, int(r)): int(us) for s, l, r, us, *_ in rows}
bad = sum(int(f) + int(x) for *_, f, x in rows)
rounds = sorted({k[2] for k in cpu})
print("\n| phase | gateway µs/req (median) | nginx µs/req (median) | median of per-round ratios | target |")
print("| --- | --- | --- | --- | --- |")
for label, ref, target in (("fresh", "newconn", "≤ 0.75 ×"), ("reuse", "newconn", "≤ 0.45 ×"), ("resume", "resume", "≤ 0.6 ×")):
    ratios = [cpu[("gateway", label, r)] / cpu[("nginx", ref, r)] for r in rounds if ("gateway", label, r) in cpu and ("nginx", ref, r) in cpu and cpu[("nginx", ref, r)]]
    g = statistics.median(cpu[("gateway", label, r)] for r in rounds)
    n = statistics.median(cpu[("nginx", ref, r)] for r in rounds)
    print(f"| newconn {label} | {g:.0f} | {n:.0f} | {statistics.median(ratios):.2f} × ({', '.join(f'{x:.2f}' for x in ratios)}) | {target} |")
print("\nThe floor (`loadgen floor`: handshake with the client's possession proof, one request read,")
print("one RS256 signature or none, a static answer; no chain check, routing or upstream):\n")
print("| phase | floor µs/req (median) | floor / nginx (rounds) | gateway above the floor, µs (rounds) |")
print("| --- | --- | --- | --- |")
for label in ("fresh", "reuse"):
    rs = [r for r in rounds if ("floor", label, r) in cpu and ("nginx", "newconn", r) in cpu]
    if not rs:
        continue
    f = statistics.median(cpu[("floor", label, r)] for r in rs)
    ratios = [cpu[("floor", label, r)] / cpu[("nginx", "newconn", r)] for r in rs]
    above = [cpu[("gateway", label, r)] - cpu[("floor", label, r)] for r in rs if ("gateway", label, r) in cpu]
    print(f"| newconn {label} | {f:.0f} | {statistics.median(ratios):.2f} × ({', '.join(f'{x:.2f}' for x in ratios)}) | {statistics.median(above):.0f} ({', '.join(str(a) for a in above)}) |")
print(f"\nfailed or non-2xx requests: {bad}")
PY
