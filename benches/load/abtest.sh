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
BENCH_NAME=abtest
GW=$1
# shellcheck source=common.sh
. benches/load/common.sh
need ab apache2-utils
SECS=${SECS:-4}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
"$GW" dev-pki --out "$work/pki" >/dev/null
P=$work/pki; UPORT=$(free_port)
cat "$P/client.pem" "$P/client-key.pem" > "$work/ab-client.pem"
echo -n "grant_type=client_credentials&client_id=11111111-2222-3333-4444-555555555555&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default" > "$work/form"
taskset -c 1 "$LG" upstream "127.0.0.1:$UPORT" "$P/server.pem" "$P/server-key.pem" & started+=($!)
wait_port "$UPORT"
UPORT2=$(free_port)
LOADGEN_UPSTREAM_H1=1 taskset -c 1 "$LG" upstream "127.0.0.1:$UPORT2" "$P/server.pem" "$P/server-key.pem" & started+=($!)
wait_port "$UPORT2"
declare -A port gpid
i=0
for bin in "$@"; do
  i=$((i+1)); p=$(free_port); port[$i]=$p
  up=$UPORT
  [ -n "${H1_SECOND:-}" ] && [ "$i" = 2 ] && up=$UPORT2
  newconn_config "$work/g$i.toml" "$p" "$(entra_reuse_upstream "$up" "${REUSE:-true}")" "${RESUMPTION:-false}"
  TOKIO_WORKER_THREADS=1 taskset -c 0 "$bin" --log-level "${LOGLEVEL:-error}" serve -c "$work/g$i.toml" 2>>"$work/log$i" >/dev/null & gpid[$i]=$!; started+=($!)
  wait_port "$p"
done
n=$i
[ -n "${PERF:-}" ] && { perf record -F 2000 -g --call-graph dwarf,16384 -p "${gpid[1]}" -o /tmp/perf.data -- sleep $((SECS - 1)) >/dev/null 2>&1 & }
for r in $(seq "${ROUNDS:-5}"); do
  for i in $(seq "$n"); do
    b=$(ticks "${gpid[$i]}")
    out=$(taskset -c 1 ab -q -E "$work/ab-client.pem" -t "$SECS" -n 10000000 -c 32 -p "$work/form" -T application/x-www-form-urlencoded "https://127.0.0.1:${port[$i]}/token" 2>&1)
    a=$(ticks "${gpid[$i]}")
    reqs=$(echo "$out" | awk '/Complete requests/ {print $3}')
    us=$(( (a - b) * 10000 / (reqs > 0 ? reqs : 1) ))
    echo "round $r bin $i: $us µs/req ($reqs)"
  done
done
