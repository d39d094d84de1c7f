#!/usr/bin/env python3
"""A legacy client's token request with `requests`: mutual TLS plus client_id, nothing else.

Defaults match the shipped gateway.toml (run `mtls-gateway serve` from the repository root);
the dev PKI is found next to it from any folder, this one included.
"""
import os
import sys

import requests

gateway = os.environ.get("GATEWAY_URL", "https://localhost:8443")
here = os.path.dirname(os.path.abspath(__file__))
pki = os.environ.get("PKI", os.path.join(here, "..", "..", "dev-pki"))
client_id = os.environ.get("CLIENT_ID", "11111111-2222-3333-4444-555555555555")
scope = os.environ.get("SCOPE", "api://demo/.default")

response = requests.post(
    f"{gateway}/token",
    data={"grant_type": "client_credentials", "client_id": client_id, "scope": scope},
    cert=(f"{pki}/client.pem", f"{pki}/client-key.pem"),
    verify=f"{pki}/ca.pem",
    timeout=30,
)
body = response.json()
if response.status_code != 200:
    print(f"{response.status_code} {body.get('error')}: {body.get('error_description')}", file=sys.stderr)
    sys.exit(1)
# Print what the token is for, never the token itself.
print(f"got a {body['token_type']} token, expires in {body['expires_in']} s")
