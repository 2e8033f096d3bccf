"""Verify a token the auth-service issued with PyJWT, a JWT library that is not ours.

Usage: pyjwt_verify.py JWKS_URL TOKEN ISSUER AUDIENCE [ALGORITHM]
Fetches the JWKS with PyJWT's PyJWKClient, verifies the signature (RS256 unless ALGORITHM says
ES256 or EdDSA: the only one accepted) and the registered claims,
and prints the verified claims as JSON. Exits non-zero (with PyJWT's reason) if anything fails.
"""
import json
import sys

import jwt
from jwt import PyJWKClient


def main() -> int:
    jwks_url, token, issuer, audience = sys.argv[1:5]
    algorithm = sys.argv[5] if len(sys.argv) > 5 else "RS256"
    signing_key = PyJWKClient(jwks_url, cache_keys=False).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=[algorithm],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
    )
    header = jwt.get_unverified_header(token)
    print(json.dumps({"header": header, "claims": claims}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # report PyJWT's reason on one line
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
