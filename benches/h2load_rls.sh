#!/usr/bin/env bash
# Envoy's ShouldRateLimit under an outside load tool: h2load (Debian's
# nghttp2-client) sends the same gRPC request, one hot tenant's descriptor,
# to the empty RLS server (`quotad ceiling`, the ceiling) and to a node, in
# alternating rounds; while one is loaded the others are stopped (SIGSTOP)
# so that nothing else runs on the two cores. Each node figure is printed
# as a fraction of the ceiling's figure in the same round.
# Usage: benches/h2load_rls.sh [-s seconds] [-r rounds] [-c connections] [-m streams]
#   defaults: 8 s, 3 rounds, 8 connections x 32 streams (the issue's load)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=8
rounds=3
conns=8
streams=32
while getopts "s:r:c:m:" o; do
  case $o in
    s) secs=$OPTARG ;;
    r) rounds=$OPTARG ;;
    c) conns=$OPTARG ;;
    m) streams=$OPTARG ;;
    *) exit 2 ;;
  esac
done
command -v h2load >/dev/null || {
  echo "h2load is not installed (apt-get install nghttp2-client)" >&2
  exit 1
}
source benches/lib.sh
bin=$(release_bin)
token=$(token_for "$bin")
printf '[[domains]]\ndomain = "fast"\nconsistency = "fast"\n\n[[domains]]\ndomain = "*"\n' >"$work/rls.toml"

start_node "$bin" "$work/node" 7600 --envoy-config "$work/rls.toml"
quotad_pid=$node_pid
q() { "$bin" --http http://127.0.0.1:7602 --grpc http://127.0.0.1:7601 --token "$token" "$@"; }
# One ENTERPRISE tenant (unlimited: every request is admitted and written).
q bench --op check --tenants 1 --tenants-file "$work/tenants" --duration-secs 1 >/dev/null
tenant=$(head -n1 "$work/tenants")

"$bin" ceiling --listen 127.0.0.1:7610 >"$work/ceiling.out" 2>&1 &
ceiling_pid=$!
pids+=("$ceiling_pid")
for _ in $(seq 1 100); do grep -q listening "$work/ceiling.out" && break; sleep 0.1; done

rls_body fast "$tenant" "$work/fast.bin"
rls_body strict "$tenant" "$work/strict.bin"

path=/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit
# The node must decide what h2load sends (a gRPC error would also be an
# HTTP 200 to h2load): 1,000 requests must show as 1,000 units of usage.
h2load -n 1000 -c 1 -m 10 -d "$work/strict.bin" -H 'content-type: application/grpc' \
  -H 'te: trailers' -H "authorization: Bearer $token" "http://127.0.0.1:7601$path" >/dev/null
used=$(curl -sf -H "authorization: Bearer $token" \
  "http://127.0.0.1:7602/api/v1/tenants/$tenant/quotas/api_requests" |
  python3 -c "import json,sys; print(json.load(sys.stdin)['data']['usage'])")
[ "$used" = 1000 ] || { echo "the node counted $used of 1000 requests" >&2; exit 1; }

run() { # port body -> requests/s (succeeded ones)
  local out
  out=$(h2load -c "$conns" -m "$streams" -D "$secs" --warm-up-time 1 -d "$2" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    -H "authorization: Bearer $token" "http://127.0.0.1:$1$path" 2>&1)
  local ok rate
  ok=$(echo "$out" | sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p')
  rate=$(echo "$out" | sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p')
  [ -n "$ok" ] && [ "$ok" -gt 0 ] || { echo "$out" >&2; echo 0; return; }
  echo "$rate"
}
only() { # pid to run, the others stopped
  for p in "$quotad_pid" "$ceiling_pid"; do
    if [ "$p" = "$1" ]; then kill -CONT "$p"; else kill -STOP "$p"; fi
  done
  sleep 0.2
}

echo "h2load ${conns}x${streams}, ${secs} s per cell, tenant $tenant"
echo "| round | ceiling req/s | fast req/s | fast / ceiling | strict req/s | strict / ceiling |"
echo "|---|---|---|---|---|---|"
sum_f=0
sum_s=0
for r in $(seq 1 "$rounds"); do
  only "$ceiling_pid"
  c=$(run 7610 "$work/fast.bin")
  only "$quotad_pid"
  f=$(run 7601 "$work/fast.bin")
  s=$(run 7601 "$work/strict.bin")
  rf=$(python3 -c "print(f'{$f / $c:.2f}')")
  rs=$(python3 -c "print(f'{$s / $c:.2f}')")
  sum_f=$(python3 -c "print($sum_f + $rf)")
  sum_s=$(python3 -c "print($sum_s + $rs)")
  printf '| %s | %.0f | %.0f | %s | %.0f | %s |\n' "$r" "$c" "$f" "$rf" "$s" "$rs"
done
kill -CONT "$ceiling_pid" "$quotad_pid" 2>/dev/null || true
python3 -c "print(f'mean: fast {$sum_f / $rounds:.2f} of the ceiling, strict {$sum_s / $rounds:.2f}')"
