#!/usr/bin/env bash
# Validates deploy/ with the tools that run here (no container engine, no
# cluster): `docker-compose config` for compose.yaml, `kubernetes-validate
# --strict` for the Kubernetes manifests (custom resources are only
# warned about), then scripts/check_deploy.py for what the schemas cannot
# see. Installs docker-compose from Debian if it is missing. Called by
# scripts/test.sh with QUOTAD_TEST_PYTHON set to its venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${QUOTAD_TEST_PYTHON:?set QUOTAD_TEST_PYTHON to a python with kubernetes-validate}"
bin="$(dirname "$py")"

if ! command -v docker-compose >/dev/null 2>&1; then
  echo "== installing docker-compose (Debian package) to validate deploy/compose.yaml"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq docker-compose >/dev/null
fi
docker-compose -f deploy/compose.yaml config -q
"$bin/kubernetes-validate" --strict --quiet deploy/k8s/*.yaml
"$py" scripts/check_deploy.py
echo "deploy files: valid"
