#!/usr/bin/env bash
# Before/after figures for hot-path changes, in one run: each node binary
# given serves the same workloads from a copy of the same data dir, loaded
# by the same `quotad bench`. Usage:
#   benches/hot_path.sh [-s seconds] [-t tenants] [-w workload]... BINARY...
# A workload is bench flags, e.g. -w "--op check --connections 8 --in-flight 32".
# Without -w, the default set below runs. The first binary also creates the
# tenants (ENTERPRISE, unlimited) and the Envoy mapping has a "fast" domain.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=5
tenants=200
workloads=()
while getopts "s:t:w:" o; do
  case $o in
    s) secs=$OPTARG ;;
    t) tenants=$OPTARG ;;
    w) workloads+=("$OPTARG") ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "give at least one quotad binary" >&2; exit 2; }
if [ ${#workloads[@]} -eq 0 ]; then
  workloads=(
    "--op increment --consistency strict --connections 4 --in-flight 32"
    "--op increment --consistency fast --connections 4 --in-flight 32"
    "--op rls --rls-domain fast --connections 4 --in-flight 32"
    "--op rls --rls-domain strict --connections 4 --in-flight 32"
    "--op batch --batch-size 1000 --consistency fast --connections 2 --in-flight 2"
  )
fi
source benches/lib.sh
bench=$1
token=$(token_for "$bench")
printf '[[domains]]\ndomain = "fast"\nconsistency = "fast"\n\n[[domains]]\ndomain = "*"\n' >"$work/rls.toml"

start() { # binary, data dir
  start_node "$1" "$2" 7500 --envoy-config "$work/rls.toml"
}
stop() { stop_node; }
q() { "$bench" --http http://127.0.0.1:7502 --grpc http://127.0.0.1:7501 --token "$token" "$@"; }

# The tenants, once, in a template data dir.
start "$1" "$work/template"
q bench --op check --tenants "$tenants" --tenants-file "$work/tenants" \
  --duration-secs 1 >/dev/null 2>&1
stop

echo "| workload | binary | req/s | decisions/s | p50 µs | p99 µs | p99.9 µs | errors |"
echo "|---|---|---|---|---|---|---|---|"
for w in "${workloads[@]}"; do
  for b in "$@"; do
    rm -rf "$work/node" && cp -r "$work/template" "$work/node"
    start "$b" "$work/node"
    # shellcheck disable=SC2086
    q --json bench $w --tenants "$tenants" --tenants-file "$work/tenants" \
      --duration-secs "$secs" 2>/dev/null |
      python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"| $w | $(basename "$b") | {r['perSecond']:.0f} | {r['decisionsPerSecond']:.0f} | {r['p50Us']} | {r['p99Us']} | {r['p999Us']} | {r['errors']} |\")"
    stop
  done
done
