#!/usr/bin/env bash
# A flamegraph of one node under one `quotad bench` workload: perf with
# DWARF call graphs (the release profile keeps line tables), folded and
# drawn by inferno (`cargo install inferno` if missing).
# Usage: benches/flamegraph.sh OUT.svg [bench flags...]
#   e.g. benches/flamegraph.sh rls.svg --op rls --connections 8 --in-flight 32
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "$1")
shift
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
command -v inferno-flamegraph >/dev/null || cargo install inferno --quiet
cargo build --release --quiet
bin=$PWD/target/release/quotad
work=$(mktemp -d)
export JWT_SECRET=bench-secret-0123456789abcdef
token=$("$bin" token --sub bench --role operator)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
RUST_LOG=error "$bin" serve --data-dir "$work/node" --grpc-addr 127.0.0.1:7701 \
  --http-addr 127.0.0.1:7702 --peer-addr 127.0.0.1:7703 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 300); do curl -sf http://127.0.0.1:7702/readyz >/dev/null && break; sleep 0.1; done
q() { "$bin" --http http://127.0.0.1:7702 --grpc http://127.0.0.1:7701 --token "$token" "$@"; }
q bench --tenants 200 --tenants-file "$work/tenants" --op check --duration-secs 1 >/dev/null 2>&1
perf record -F 499 --call-graph dwarf,16384 -p "$pid" -o "$work/perf.data" -- sleep 4 >/dev/null 2>&1 &
perf_pid=$!
q bench --tenants 200 --tenants-file "$work/tenants" --duration-secs 5 "$@"
wait "$perf_pid" || true
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf | inferno-flamegraph >"$out"
echo "wrote $out"
