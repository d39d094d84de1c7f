# Sourced by run.sh and newconn.sh: the tools they need, the release build, a work folder
# removed on exit with every process started (append pids to `started`), and port helpers.
need() { # command, then the Debian package that has it
  command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; }
}
need nginx nginx-light
need taskset util-linux
cargo build --release --locked --bin mtls-gateway --example loadgen
GW=${GW:-target/release/mtls-gateway}
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

# The reference of BENCH.md: nginx terminating mTLS and forwarding to the upstream on $UPORT,
# one worker on core 0, listening on port $1; $2 "resume" turns its session cache and tickets
# on (the resuming phase). Needs $P (the dev PKI). Sets nginx_pid and nginx_pids (master and
# worker, for CPU accounting).
start_nginx() {
  local cache="ssl_session_cache off; ssl_session_tickets off;"
  [ "${2:-}" = resume ] && cache="ssl_session_cache shared:SSL:10m; ssl_session_tickets on;"
  mkdir -p "$work/nginx"
  cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
worker_rlimit_nofile 19000;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log error;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_header_timeout 120s;
  upstream idp { server 127.0.0.1:$UPORT; keepalive 64; }
  server {
    listen 127.0.0.1:$1 ssl;
    ssl_certificate $P/server.pem;
    ssl_certificate_key $P/server-key.pem;
    ssl_client_certificate $P/ca.pem;
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    $cache
    location / {
      proxy_pass https://idp;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_trusted_certificate $P/ca.pem;
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_session_reuse on;
    }
  }
}
NGINX
  taskset -c 0 nginx -c "$work/nginx.conf" -g 'daemon off; user root;' &
  nginx_pid=$!
  started+=($nginx_pid)
  wait_port "$1"
  nginx_pids="$nginx_pid,$(pgrep -P "$nginx_pid" | paste -sd, -)"
}

# A gateway.toml for the new-connection benches, written to $1: listening on port $2, the
# upstream block $3 (its `ca` is added), `server.resumption` $4 (true | false). Needs $P.
newconn_config() {
  cat > "$1" <<TOML
[server]
listen = "127.0.0.1:$2"
cert = "pki/server.pem"
key = "pki/server-key.pem"
client_ca = ["pki/ca.pem"]
resumption = $4
[limits]
header_read_timeout = "120s"
max_connections = 20000
max_connections_per_peer = 20000
$3
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
}

# The Entra upstream block of the reuse phases, on the upstream at port $1.
entra_reuse_upstream() {
  printf '[upstreams.bench]\ntype = "entra"\nauthority = "https://127.0.0.1:%s"\ntenant = "bench"\nreuse_assertion = %s' "$1" "${2:-true}"
}
