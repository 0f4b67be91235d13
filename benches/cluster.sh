#!/usr/bin/env bash
# Cluster figures for BENCHMARKS.md: one node, then a 3-node dev cluster on
# this machine, each loaded by `quotad bench` with strict and with fast
# increments. Usage: benches/cluster.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
cargo build --release --quiet
bin=$PWD/target/release/quotad
work=$(mktemp -d)
export JWT_SECRET=bench-secret-0123456789abcdef
token=$("$bin" token --sub bench --role operator)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

wait_ready() { # http address
  for _ in $(seq 1 300); do
    curl -sf "http://$1/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "node at $1 not ready" >&2; return 1
}

run() { # label, grpc nodes (comma-separated), http, consistency
  "$bin" --http "http://$3" --token "$token" --json bench --nodes "$2" \
    --op increment --consistency "$4" --connections 4 --in-flight 32 \
    --duration-secs "$secs" --tenants 200 |
    python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"| $1 | $4 | {r['perSecond']:.0f} | {r['p50Us']} | {r['p99Us']} | {r['p999Us']} | {r['errors']} |\")"
}

echo "| setup | consistency | increments/s | p50 µs | p99 µs | p99.9 µs | errors |"
echo "|---|---|---|---|---|---|---|"
RUST_LOG=error "$bin" serve --data-dir "$work/single" --grpc-addr 127.0.0.1:7201 \
  --http-addr 127.0.0.1:7202 --peer-addr 127.0.0.1:7203 >/dev/null &
pids+=($!)
wait_ready 127.0.0.1:7202
run "1 node" 127.0.0.1:7201 127.0.0.1:7202 strict
run "1 node" 127.0.0.1:7201 127.0.0.1:7202 fast
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

RUST_LOG=error "$bin" dev-cluster --nodes 3 --dir "$work/cluster" --base-port 7300 >/dev/null &
pids+=($!)
for i in 1 2 3; do wait_ready "127.0.0.1:73${i}1"; done
# Let placement finish (every group on all three nodes, leaders spread).
sleep 8
nodes=127.0.0.1:7310,127.0.0.1:7320,127.0.0.1:7330
run "3 nodes" "$nodes" 127.0.0.1:7311 strict
run "3 nodes" "$nodes" 127.0.0.1:7311 fast
