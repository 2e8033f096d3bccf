"""A confidential relying party written with Authlib (PyPI), unmodified: it signs users in with
the authorization code flow and PKCE, validates the ID token with Authlib's own checks
(signature against the JWKS, iss, aud, azp, exp, iat, nonce, at_hash), reads UserInfo, calls a
gateway route with the access token, and logs out through end_session_endpoint.

    python authlib_rp.py <issuer> <gateway base> <port> <client_id> <client_secret>

Pages: /login, /callback, /logout, /bye; /check answers the gateway's status for the token.
"""

import html
import json
import secrets
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken

ISSUER, GATEWAY, PORT, CLIENT_ID, CLIENT_SECRET = sys.argv[1:6]
PORT = int(PORT)
HERE = f"http://127.0.0.1:{PORT}"
META = requests.get(f"{ISSUER}/.well-known/openid-configuration", timeout=5).json()
STATE = {}


def session():
    return OAuth2Session(
        CLIENT_ID,
        CLIENT_SECRET,
        scope="openid profile",
        redirect_uri=f"{HERE}/callback",
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def page(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def redirect(self, location):
        self.send_response(302)
        self.send_header("location", location)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/login":
            verifier = secrets.token_urlsafe(48)
            nonce = secrets.token_urlsafe(16)
            uri, state = session().create_authorization_url(
                META["authorization_endpoint"], code_verifier=verifier, nonce=nonce
            )
            STATE[state] = (verifier, nonce)
            return self.redirect(uri)
        if url.path == "/callback":
            if "error" in query:
                return self.page(200, f'<pre id="result">{html.escape(json.dumps(query))}</pre>')
            if query.get("iss") != META["issuer"]:
                return self.page(400, "<p>wrong iss</p>")
            verifier, nonce = STATE.pop(query["state"])
            token = session().fetch_token(
                META["token_endpoint"],
                authorization_response=f"{HERE}{self.path}",
                code_verifier=verifier,
            )
            jwks = JsonWebKey.import_key_set(requests.get(META["jwks_uri"], timeout=5).json())
            claims = jwt.decode(
                token["id_token"],
                jwks,
                claims_cls=CodeIDToken,
                claims_options={"iss": {"essential": True, "value": META["issuer"]}},
                claims_params={"nonce": nonce, "client_id": CLIENT_ID, "access_token": token["access_token"]},
            )
            claims.validate()
            auth = {"authorization": f"Bearer {token['access_token']}"}
            userinfo = requests.get(META["userinfo_endpoint"], headers=auth, timeout=5).json()
            api = requests.get(f"{GATEWAY}/api/whoami", headers=auth, timeout=5)
            STATE["last"] = token
            result = {
                "rp": "authlib",
                "sub": claims["sub"],
                "preferred_username": claims.get("preferred_username"),
                "sid": claims.get("sid"),
                "userinfo": userinfo,
                "gateway_status": api.status_code,
                "gateway_user": api.json().get("user_id") if api.ok else None,
            }
            return self.page(200, f'<pre id="result">{html.escape(json.dumps(result))}</pre>')
        if url.path == "/check":
            token = STATE.get("last", {}).get("access_token", "")
            api = requests.get(f"{GATEWAY}/api/whoami", headers={"authorization": f"Bearer {token}"}, timeout=5)
            return self.page(200, f'<pre id="result">{api.status_code}</pre>')
        if url.path == "/logout":
            params = urllib.parse.urlencode(
                {"id_token_hint": STATE["last"]["id_token"], "post_logout_redirect_uri": f"{HERE}/bye", "state": "authlib-bye"}
            )
            return self.redirect(f"{META['end_session_endpoint']}?{params}")
        if url.path == "/bye":
            return self.page(200, f'<pre id="result">{html.escape(json.dumps(query))}</pre>')
        return self.page(404, "<p>not found</p>")


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
