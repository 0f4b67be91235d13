#!/usr/bin/env bash
# Single-node figures for BENCHMARKS.md, each against the ceiling (an empty
# server on the same stack, `quotad ceiling`) in the same run:
# ShouldRateLimit for one hot tenant and for many Zipf-distributed tenants,
# Batch of 1000, Stream, unary Check/Increment.
# Usage: benches/single_node.sh [seconds per run, default 10] [many, default 100000]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
many=${2:-100000}
source benches/lib.sh
bin=$(release_bin)
token=$(token_for "$bin")
# Envoy mapping: domain "fast" decides in memory and logs in the background,
# any other domain is strict.
printf '[[domains]]\ndomain = "fast"\nconsistency = "fast"\n\n[[domains]]\ndomain = "*"\n' >"$work/rls.toml"
start_node "$bin" "$work/node" 7600 --envoy-config "$work/rls.toml"
q() { "$bin" --http http://127.0.0.1:7602 --grpc http://127.0.0.1:7601 --token "$token" "$@"; }
for n in 1 200 "$many"; do
  q bench --op check --tenants "$n" --tenants-file "$work/t$n" --duration-secs 1 >/dev/null 2>&1
done

echo "| workload | quotad req/s | decisions/s | p50 µs | p99 µs | p99.9 µs | ceiling req/s | ceiling p99 µs | of ceiling |"
echo "|---|---|---|---|---|---|---|---|---|"
run() { # label, tenants, bench flags...
  local label=$1 n=$2
  shift 2
  q --json bench --tenants "$n" --tenants-file "$work/t$n" --duration-secs "$secs" --ceiling "$@" 2>/dev/null |
    python3 -c "import json,sys; r=json.load(sys.stdin); c=r['ceiling']; print(f\"| $label | {r['perSecond']:.0f} | {r['decisionsPerSecond']:.0f} | {r['p50Us']} | {r['p99Us']} | {r['p999Us']} | {c['perSecond']:.0f} | {c['p99Us']} | {100*r['fractionOfCeiling']:.0f}% |\")"
}
run "ShouldRateLimit, fast, 1 hot tenant, 8x32" 1 --op rls --rls-domain fast --connections 8 --in-flight 32
run "ShouldRateLimit, fast, $many tenants zipf, 8x32" "$many" --op rls --rls-domain fast --distribution zipf --connections 8 --in-flight 32
run "ShouldRateLimit, strict, 1 hot tenant, 8x32" 1 --op rls --rls-domain strict --connections 8 --in-flight 32
run "ShouldRateLimit, strict, $many tenants zipf, 8x32" "$many" --op rls --rls-domain strict --distribution zipf --connections 8 --in-flight 32
run "Check, 200 tenants, 4x32" 200 --op check --direct --connections 4 --in-flight 32
run "Increment, fast, 200 tenants, 4x32" 200 --op increment --consistency fast --direct --connections 4 --in-flight 32
run "Increment, strict, 200 tenants, 4x32" 200 --op increment --consistency strict --direct --connections 4 --in-flight 32
run "Batch of 1000, fast, 1 tenant, 2x2" 1 --op batch --batch-size 1000 --consistency fast --connections 2 --in-flight 2
run "Batch of 1000, fast, 200 tenants, 2x2" 200 --op batch --batch-size 1000 --consistency fast --connections 2 --in-flight 2
run "Batch of 1000, strict, 200 tenants, 2x2" 200 --op batch --batch-size 1000 --consistency strict --connections 2 --in-flight 2
run "Stream, fast, 200 tenants, 2x256" 200 --op stream --consistency fast --connections 2 --in-flight 256
run "Stream, strict, 200 tenants, 2x256" 200 --op stream --consistency strict --connections 2 --in-flight 256
