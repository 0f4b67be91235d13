#!/usr/bin/env bash
# A flamegraph of one node under one `quotad bench` workload: perf with
# DWARF call graphs (the release profile keeps line tables), folded and
# drawn by inferno (`cargo install inferno` if missing).
# Usage: benches/flamegraph.sh OUT.svg [bench flags...]
#   e.g. benches/flamegraph.sh rls.svg --op rls --rls-domain fast --connections 8 --in-flight 32
# The node maps Envoy domain "fast" to fast mode and any other to strict,
# as the other bench scripts do. Frames narrower than 0.2 px are left out
# (FLAMEGRAPH_MINWIDTH) so the SVGs kept in benches/flamegraphs stay small.
# Inlined frames are not expanded (`perf script --no-inline`): resolving
# them runs addr2line over the 300 MB binary, minutes per graph here.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: benches/flamegraph.sh OUT.svg [bench flags...]" >&2; exit 2; }
out=$(realpath -m "$1")
shift
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
command -v inferno-flamegraph >/dev/null || cargo install inferno --quiet
source benches/lib.sh
bin=$(release_bin)
token=$(token_for "$bin")
printf '[[domains]]\ndomain = "fast"\nconsistency = "fast"\n\n[[domains]]\ndomain = "*"\n' >"$work/rls.toml"
start_node "$bin" "$work/node" 7700 --envoy-config "$work/rls.toml"
pid=$node_pid
q() { "$bin" --http http://127.0.0.1:7702 --grpc http://127.0.0.1:7701 --token "$token" "$@"; }
q bench --tenants 200 --tenants-file "$work/tenants" --op check --duration-secs 1 >/dev/null 2>&1
perf record -F 499 --call-graph dwarf,16384 -p "$pid" -o "$work/perf.data" -- sleep 4 >/dev/null 2>&1 &
perf_pid=$!
q bench --tenants 200 --tenants-file "$work/tenants" --duration-secs 5 "$@"
wait "$perf_pid" || true
perf script --no-inline -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf |
  inferno-flamegraph --minwidth "${FLAMEGRAPH_MINWIDTH:-0.2}" --title "quotad bench $*" >"$out"
echo "wrote $out"
