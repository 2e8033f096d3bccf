"""Writes a .env from .env.example with every empty secret filled with a fresh random value,
as docs/deployment.md asks an operator to do (`compose_env.py .env.example .env`)."""

import base64
import secrets
import sys

src, dst = sys.argv[1], sys.argv[2]
out = []
for line in open(src):
    key, sep, value = line.rstrip("\n").partition("=")
    if sep and not line.startswith("#") and value == "":
        if key == "AUTH_KEY_ENCRYPTION_KEY":
            value = base64.b64encode(secrets.token_bytes(32)).decode()
        else:
            value = secrets.token_hex(32)
    out.append(f"{key}{sep}{value}" if sep else line.rstrip("\n"))
with open(dst, "w") as f:
    f.write("\n".join(out) + "\n")
