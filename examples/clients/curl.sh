#!/usr/bin/env sh
# A legacy client's token request: mutual TLS plus client_id, nothing else.
# Defaults match the shipped gateway.toml (run `mtls-gateway serve` from the repository root);
# the dev PKI is found next to it from any folder, this one included.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
GATEWAY_URL=${GATEWAY_URL:-https://localhost:8443}
PKI=${PKI:-$HERE/../../dev-pki}
CLIENT_ID=${CLIENT_ID:-11111111-2222-3333-4444-555555555555}
SCOPE=${SCOPE:-api://demo/.default}

curl --silent --show-error --fail-with-body \
  --cacert "$PKI/ca.pem" \
  --cert "$PKI/client.pem" --key "$PKI/client-key.pem" \
  "$GATEWAY_URL/token" \
  --data-urlencode grant_type=client_credentials \
  --data-urlencode "client_id=$CLIENT_ID" \
  --data-urlencode "scope=$SCOPE"
echo
