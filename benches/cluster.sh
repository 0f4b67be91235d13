#!/usr/bin/env bash
# Cluster figures for BENCHMARKS.md: one node, then a 3-node dev cluster on
# this machine, loaded by `quotad bench` with unary increments (through the
# routing client) and with Batch of 1000, strict and fast; then 3-node
# strict in open loop at half of the 1-node fast unary rate, for its p99.
# Usage: benches/cluster.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
source benches/lib.sh
bin=$(release_bin)
token=$(token_for "$bin")

declare -A rate
run() { # label, grpc nodes (comma-separated), http, consistency, workload, extra flags...
  local label=$1 nodes=$2 http=$3 mode=$4 what=$5
  shift 5
  local flags
  case $what in
    unary) flags=(--op increment --connections 4 --in-flight 32) ;;
    batch) flags=(--op batch --batch-size 1000 --connections 2 --in-flight 2) ;;
  esac
  "$bin" --http "http://$http" --token "$token" --json bench --nodes "$nodes" \
    "${flags[@]}" --consistency "$mode" --duration-secs "$secs" --tenants 200 \
    --tenants-file "$work/tenants-$label" "$@" >"$work/out.json"
  python3 - "$label" "$mode" "$what" "$work/out.json" <<'PY'
import json, sys
label, mode, what, path = sys.argv[1:]
r = json.load(open(path))
rate = f"open loop {r['rate']:.0f}/s" if r.get('rate') else "closed loop"
print(f"| {label} | {mode} | {what} ({rate}) | {r['decisionsPerSecond']:.0f} | {r['p50Us']} | {r['p99Us']} | {r['p999Us']} | {r['errors']} |")
PY
  rate["$label/$mode/$what"]=$(python3 -c "import json; print(json.load(open('$work/out.json'))['perSecond'])")
}

echo "| setup | consistency | workload | decisions/s | p50 µs | p99 µs | p99.9 µs | errors |"
echo "|---|---|---|---|---|---|---|---|"
start_node "$bin" "$work/single" 7200
for what in unary batch; do
  for mode in fast strict; do
    run "1 node" 127.0.0.1:7201 127.0.0.1:7202 "$mode" "$what"
  done
done
stop_node

RUST_LOG=error "$bin" dev-cluster --nodes 3 --dir "$work/cluster" --base-port 7300 >/dev/null 2>&1 &
pids+=($!)
for i in 1 2 3; do wait_ready "127.0.0.1:73${i}1"; done
# Let placement finish (every group on all three nodes, leaders spread).
sleep 8
nodes=127.0.0.1:7310,127.0.0.1:7320,127.0.0.1:7330
for what in unary batch; do
  for mode in strict fast; do
    run "3 nodes" "$nodes" 127.0.0.1:7311 "$mode" "$what"
  done
done
# Half of the single node's fast unary rate, offered at a fixed rate.
half=$(python3 -c "print(${rate["1 node/fast/unary"]} / 2)")
run "3 nodes" "$nodes" 127.0.0.1:7311 strict unary --rate "$half"
for what in unary batch; do
  python3 -c "print(f'3-node strict $what / 1-node fast $what: {${rate["3 nodes/strict/$what"]} / ${rate["1 node/fast/$what"]}:.0%}')"
done
