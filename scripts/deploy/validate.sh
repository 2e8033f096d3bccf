#!/usr/bin/env bash
# Validates the deployment files offline (no container engine, no cluster):
#   - hadolint on the Dockerfile;
#   - docker-compose 1.29.2 `config` on docker-compose.yml, with a .env made from .env.example;
#   - `kubectl kustomize k8s` rendered, then kubernetes-validate (strict) on every object;
#   - kubernetes-validate (strict) on k8s/examples/*.yaml, which the default install leaves out.
# The gateway configurations of both (deploy/compose/gateway.toml, k8s/gateway.toml) are loaded
# by the gateway's own unit tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(bash scripts/deploy/tools.sh)"
work=target/deploy-check
rm -rf "$work" && mkdir -p "$work"

"$HADOLINT" --failure-threshold warning Dockerfile
echo "deploy: hadolint: Dockerfile clean"

# docker-compose 1.x predates secrets taken from the environment (Compose Specification,
# `secrets.<name>.environment`); for its check only, those become file secrets.
"$COMPOSE_PYTHON" scripts/deploy/compose_env.py .env.example "$work/.env"
"$COMPOSE_PYTHON" - "$work" <<'PY'
import sys, yaml
work = sys.argv[1]
doc = yaml.safe_load(open("docker-compose.yml"))
for name, secret in doc.get("secrets", {}).items():
    if "environment" in secret:
        path = f"{work}/secret-{name}"
        open(path, "w").write("x")
        doc["secrets"][name] = {"file": path}
yaml.safe_dump(doc, open(f"{work}/docker-compose.yml", "w"), sort_keys=False)
PY
"$COMPOSE" --project-directory "$work" --env-file "$work/.env" -f "$work/docker-compose.yml" config -q
echo "deploy: docker-compose config: docker-compose.yml valid"

"$KUBECTL" kustomize k8s > "$work/k8s.yaml"
"$KUBERNETES_VALIDATE" --strict "$work/k8s.yaml"
echo "deploy: kubernetes-validate: $(grep -c '^kind:' "$work/k8s.yaml") objects valid ($work/k8s.yaml)"
"$KUBERNETES_VALIDATE" --strict k8s/examples/*.yaml
echo "deploy: kubernetes-validate: k8s/examples valid"
