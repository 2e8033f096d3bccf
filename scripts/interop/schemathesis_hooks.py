"""schemathesis hooks for the auth-service, loaded through SCHEMATHESIS_HOOKS by
scripts/interop/schemathesis_run.sh (which sets the API_CHECK_* variables from the dev stack).

Authentication, per operation:
- `/v1/introspect`: HTTP Basic as a confidential client registered for the run;
- `/v1/userinfo`: an access token with the `openid` scope, from the code flow with PKCE as the
  public client `demo` (the dev admin signs in on the hosted page);
- `/v1/revocations`: the feed credential the gateways use;
- every other operation that takes a bearer token: the dev admin's token from `/v1/login`.

Generated cases revoke tokens of their own accord (logout, ending sessions, rotating keys at
once, changing roles), so before each case that needs one the token is checked with a cheap
call and obtained again when it is no longer accepted. schemathesis's own checks still send
missing and wrong credentials (ignored_auth) on top of these.

Run as a script (`python schemathesis_hooks.py id-token`), it prints an ID token from the code
flow: the run pins it as `id_token_hint` for the end-session endpoint.
"""

import base64
import hashlib
import html
import json
import os
import re
import secrets
import sys
import threading
from urllib.parse import parse_qs, urlencode, urlparse

import requests

BASE = os.environ["API_CHECK_BASE"]
USERNAME = os.environ["API_CHECK_USERNAME"]
PASSWORD = os.environ["API_CHECK_PASSWORD"]
FEED_TOKEN = os.environ.get("API_CHECK_FEED_TOKEN", "")
# The demo page's client and one of its registered redirect URIs (scripts/dev.sh).
CODE_CLIENT = "demo"
CODE_REDIRECT = os.environ["API_CHECK_DEMO_REDIRECT_URI"]

_lock = threading.Lock()
_tokens = {}


def login() -> str:
    """The dev admin's access token (password grant)."""
    response = requests.post(
        f"{BASE}/v1/login",
        data={"username": USERNAME, "password": PASSWORD, "scope": "profile users:write"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def code_flow() -> dict:
    """Signs the dev admin in on the hosted page and exchanges the code: the token response."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": CODE_CLIENT,
            "redirect_uri": CODE_REDIRECT,
            "scope": "openid profile",
            "state": "schemathesis",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "prompt": "login",
        }
    )
    page = requests.get(f"{BASE}/v1/authorize?{query}", allow_redirects=False, timeout=10)
    page.raise_for_status()
    # The CSRF cookie is `Secure` and this runs over plain http on loopback: send it by hand.
    csrf_cookie = page.cookies.get("__Host-auth_csrf")
    fields = {
        name: html.unescape(value)
        for name, value in re.findall(r'name="(csrf|request)" value="([^"]*)"', page.text)
    }
    signed_in = requests.post(
        f"{BASE}/v1/signin",
        headers={"Cookie": f"__Host-auth_csrf={csrf_cookie}"},
        data={**fields, "username": USERNAME, "password": PASSWORD},
        allow_redirects=False,
        timeout=10,
    )
    location = signed_in.headers.get("location", "")
    code = parse_qs(urlparse(location).query).get("code", [None])[0]
    if not code:
        raise RuntimeError(f"sign-in answered {signed_in.status_code} without a code")
    tokens = requests.post(
        f"{BASE}/v1/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CODE_REDIRECT,
            "code_verifier": verifier,
            "client_id": CODE_CLIENT,
        },
        timeout=10,
    )
    tokens.raise_for_status()
    return tokens.json()


def _accepted(kind: str, token: str) -> bool:
    path = "/v1/userinfo" if kind == "openid" else "/v1/users/me"
    response = requests.get(f"{BASE}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return response.status_code == 200


def _fresh(kind: str) -> str:
    return code_flow()["access_token"] if kind == "openid" else login()


def token_for(kind: str) -> str:
    if kind == "feed":
        return FEED_TOKEN
    with _lock:
        token = _tokens.get(kind)
        if token is None or not _accepted(kind, token):
            token = _tokens[kind] = _fresh(kind)
        return token


# The confidential client that introspects (registered by the first case that needs it).
INTROSPECTOR = "schemathesis-introspector"


def client_basic() -> str:
    with _lock:
        if "basic" not in _tokens:
            created = requests.post(
                f"{BASE}/v1/admin/clients",
                headers={"Authorization": f"Bearer {login()}"},
                json={"client_id": INTROSPECTOR, "name": "introspects for schemathesis"},
                timeout=10,
            )
            created.raise_for_status()
            secret = created.json()["client_secret"]
            _tokens["basic"] = base64.b64encode(f"{INTROSPECTOR}:{secret}".encode()).decode()
        return _tokens["basic"]


def _kind(case):
    security = case.operation.definition.raw.get("security") or []
    if case.path == "/v1/introspect":
        return "basic"
    if not any("bearer" in requirement for requirement in security):
        return None
    if case.path == "/v1/revocations":
        return "feed"
    if case.path == "/v1/userinfo":
        return "openid"
    return "admin"


def _kid(jwt: str) -> str:
    header = jwt.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def id_token() -> str:
    """An ID token whose key is still published: a case that rotated the keys at once
    (`immediately=true`, the compromise response) withdraws the key of the previous one."""
    with _lock:
        token = _tokens.get("id") or os.environ.get("API_CHECK_ID_TOKEN")
        published = requests.get(f"{BASE}/.well-known/jwks.json", timeout=10).json()["keys"]
        if token is None or _kid(token) not in {k["kid"] for k in published}:
            token = code_flow()["id_token"]
        _tokens["id"] = token
        return token


# What schemathesis.toml pins (client, redirect URIs, hint): applied to generated bodies too,
# where a phase leaves a pinned field out, for cases meant to be valid.
PINNED = {
    "/v1/authorize": lambda: {
        "client_id": "docs",
        "redirect_uri": os.environ["API_CHECK_DOCS_REDIRECT_URI"],
    },
    "/v1/end-session": lambda: {
        "client_id": CODE_CLIENT,
        "post_logout_redirect_uri": CODE_REDIRECT,
        "id_token_hint": id_token(),
    },
}

# The client that changes and deletions go to (schemathesis.toml pins it).
TARGET_CLIENT = "schemathesis-target"


def ensure_target_client() -> None:
    headers = {"Authorization": f"Bearer {token_for('admin')}"}
    found = requests.get(f"{BASE}/v1/admin/clients/{TARGET_CLIENT}", headers=headers, timeout=10)
    if found.status_code == 404:
        created = requests.post(
            f"{BASE}/v1/admin/clients",
            headers=headers,
            json={"client_id": TARGET_CLIENT, "name": "changed by schemathesis", "scopes": ["profile"]},
            timeout=10,
        )
        created.raise_for_status()


if __name__ != "__main__":
    import schemathesis

    @schemathesis.hook
    def before_call(context, case, kwargs):
        if (case.path_parameters or {}).get("id") == TARGET_CLIENT:
            ensure_target_client()
        pins = PINNED.get(case.path)
        if pins is None:
            return
        positive = case.meta is None or case.meta.generation.mode.is_positive
        if case.path == "/v1/end-session" and isinstance(case.query, dict) and "id_token_hint" in case.query:
            # The pinned hint, kept valid across key rotations.
            case.query["id_token_hint"] = id_token()
        if case.method == "POST" and positive and isinstance(case.body, dict):
            case.body.update(pins())

    @schemathesis.auth(refresh_interval=None)
    class Tokens:
        """The right token for each operation, obtained again whenever a case revoked it."""

        def get(self, case, context):
            kind = _kind(case)
            if kind == "basic":
                return "Basic " + client_basic()
            return None if kind is None else "Bearer " + token_for(kind)

        def set(self, case, data, context):
            if data is None:
                return
            case.headers = case.headers or {}
            # schemathesis fills the header from the security scheme with generated values;
            # the real credential replaces them.
            case.headers["Authorization"] = data


if __name__ == "__main__" and sys.argv[1:] == ["id-token"]:
    print(code_flow()["id_token"])
