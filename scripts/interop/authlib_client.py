"""A service written with Authlib, an OAuth2 client library that is not ours, calls another
service through the gateway with a client-credentials token.

Usage: authlib_client.py METADATA_URL CLIENT_ID CLIENT_SECRET API_URL AUTH_METHOD
Discovers the token endpoint from the issuer's RFC 8414 metadata, fetches a token with
grant_type=client_credentials (AUTH_METHOD: client_secret_basic or client_secret_post), then GETs
API_URL with Authlib's session, which adds the bearer token. Prints JSON: the token response and
the API's status and body. Exits non-zero if the token request fails.
"""
import json
import sys

import requests
from authlib.integrations.requests_client import OAuth2Session


def main() -> int:
    metadata_url, client_id, client_secret, api_url, method = sys.argv[1:6]
    metadata = requests.get(metadata_url, timeout=10).json()
    if "client_credentials" not in metadata.get("grant_types_supported", []):
        print("the metadata does not list client_credentials", file=sys.stderr)
        return 1
    if method not in metadata.get("token_endpoint_auth_methods_supported", []):
        print(f"the metadata does not list {method}", file=sys.stderr)
        return 1
    session = OAuth2Session(
        client_id,
        client_secret,
        token_endpoint_auth_method=method,
        scope="orders:read",
    )
    token = session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    res = session.get(api_url, timeout=10)
    try:
        body = res.json()
    except ValueError:
        body = res.text
    print(json.dumps({"token": dict(token), "status": res.status_code, "body": body}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
