"""Validates an OpenAPI document (stdin, JSON) with openapi-spec-validator, a validator that is
not ours; prints the version it validated as. Exits non-zero when the document is invalid."""
import json
import sys

from openapi_spec_validator import validate

doc = json.load(sys.stdin)
validate(doc)
print(doc["openapi"])
