#!/usr/bin/env bash
# What tracing costs: two nodes from the same binary, one without traces and
# one exporting spans of a sampled share of its calls (-p, default 1%) to an
# OTLP receiver (tests/python/otlp_receiver.py --count), both loaded by
# h2load with the same ShouldRateLimit request (one hot tenant each) in
# alternating rounds, the other node stopped (SIGSTOP) meanwhile. Prints
# each round's throughput ratio (traced / untraced) and each node's CPU
# time per request (utime + stime of the process, so the exporter's thread
# counts), for fast and strict decisions; then how many spans arrived.
# With -q N each connection sends N requests a second (h2load --rps): both
# nodes then serve the same offered load, and CPU per request is compared
# without the spread a saturated closed loop adds. -p 0 compares two
# untraced nodes: the noise floor of the figures.
# Usage: benches/trace_cost.sh [-s seconds] [-r rounds] [-c connections] [-m streams] [-p ratio] [-q rps]
#   defaults: 8 s, 3 rounds, 8 connections x 32 streams, ratio 0.01, closed loop
set -euo pipefail
cd "$(dirname "$0")/.."
secs=8
rounds=3
conns=8
streams=32
ratio=0.01
rps=()
while getopts "s:r:c:m:p:q:" o; do
  case $o in
    s) secs=$OPTARG ;;
    r) rounds=$OPTARG ;;
    c) conns=$OPTARG ;;
    m) streams=$OPTARG ;;
    p) ratio=$OPTARG ;;
    q) rps=("--rps=$OPTARG") ;;
    *) exit 2 ;;
  esac
done
command -v h2load >/dev/null || {
  echo "h2load is not installed (apt-get install nghttp2-client)" >&2
  exit 1
}
python=${QUOTAD_TEST_PYTHON:-.venv-test/bin/python}
"$python" -c "import grpc, opentelemetry.proto.collector.trace.v1" 2>/dev/null || {
  echo "$python cannot import grpc and opentelemetry.proto (scripts/test.sh installs them into .venv-test)" >&2
  exit 1
}
source benches/lib.sh
bin=$(release_bin)
token=$(token_for "$bin")
printf '[[domains]]\ndomain = "fast"\nconsistency = "fast"\n\n[[domains]]\ndomain = "*"\n' >"$work/rls.toml"

# The receiver counts spans until SIGTERM, then prints the count.
"$python" tests/python/otlp_receiver.py --count </dev/null >"$work/receiver.out" &
receiver_pid=$!
pids+=("$receiver_pid")
for _ in $(seq 1 100); do grep -q listening "$work/receiver.out" && break; sleep 0.1; done
otlp_port=$(sed -n 's/^listening //p' "$work/receiver.out")

start_node "$bin" "$work/plain" 7600 --envoy-config "$work/rls.toml"
plain_pid=$node_pid
start_node "$bin" "$work/traced" 7620 --envoy-config "$work/rls.toml" \
  --otlp-endpoint "http://127.0.0.1:$otlp_port" --otlp-sample-ratio "$ratio"
traced_pid=$node_pid

tenant_of() { # base port -> one unlimited tenant's id
  "$bin" --http "http://127.0.0.1:$(($1 + 2))" --grpc "http://127.0.0.1:$(($1 + 1))" \
    --token "$token" bench --op check --tenants 1 --tenants-file "$work/tenants-$1" \
    --duration-secs 1 >/dev/null 2>&1
  head -n1 "$work/tenants-$1"
}
for base in 7600 7620; do
  t=$(tenant_of $base)
  rls_body fast "$t" "$work/fast-$base.bin"
  rls_body strict "$t" "$work/strict-$base.bin"
done

path=/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # base pid kind -> "requests/s cpu_us_per_request succeeded"
  local out ok rate before after
  before=$(cpu_ticks "$2")
  out=$(h2load -c "$conns" -m "$streams" -D "$secs" "${rps[@]}" -d "$work/$3-$1.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    -H "authorization: Bearer $token" "http://127.0.0.1:$(($1 + 1))$path" 2>&1)
  after=$(cpu_ticks "$2")
  ok=$(echo "$out" | sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p')
  rate=$(echo "$out" | sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p')
  [ -n "$ok" ] && [ "$ok" -gt 0 ] || { echo "$out" >&2; exit 1; }
  python3 -c "print($rate, ($after - $before) * 1e6 / $(getconf CLK_TCK) / $ok, $ok)"
}
only() { # pid to run, the other node stopped
  for p in "$plain_pid" "$traced_pid"; do
    if [ "$p" = "$1" ]; then kill -CONT "$p"; else kill -STOP "$p"; fi
  done
  sleep 0.2
}

echo "h2load ${conns}x${streams}${rps:+ ${rps[*]} per connection}, ${secs} s per cell, sampling ratio $ratio"
echo "| round | kind | untraced req/s | traced req/s | traced / untraced | untraced CPU µs/req | traced CPU µs/req | CPU ratio |"
echo "|---|---|---|---|---|---|---|---|"
traced_requests=0
declare -A sum_rate sum_cpu
for r in $(seq 1 "$rounds"); do
  for kind in fast strict; do
    # Alternate which goes first, so drift favours neither.
    if [ $((r % 2)) = 1 ]; then
      only "$plain_pid"; read -r pr pc _ < <(run 7600 "$plain_pid" "$kind")
      only "$traced_pid"; read -r tr tc tn < <(run 7620 "$traced_pid" "$kind")
    else
      only "$traced_pid"; read -r tr tc tn < <(run 7620 "$traced_pid" "$kind")
      only "$plain_pid"; read -r pr pc _ < <(run 7600 "$plain_pid" "$kind")
    fi
    traced_requests=$((traced_requests + tn))
    rr=$(python3 -c "print(f'{$tr / $pr:.3f}')")
    rc=$(python3 -c "print(f'{$tc / $pc:.3f}')")
    sum_rate[$kind]=$(python3 -c "print(${sum_rate[$kind]:-0} + $rr)")
    sum_cpu[$kind]=$(python3 -c "print(${sum_cpu[$kind]:-0} + $rc)")
    printf '| %s | %s | %.0f | %.0f | %s | %.2f | %.2f | %s |\n' "$r" "$kind" "$pr" "$tr" "$rr" "$pc" "$tc" "$rc"
  done
done
kill -CONT "$plain_pid" "$traced_pid" 2>/dev/null || true
for kind in fast strict; do
  python3 -c "print(f'mean, $kind: throughput {${sum_rate[$kind]} / $rounds:.3f} of untraced, CPU per request {${sum_cpu[$kind]} / $rounds:.3f} of untraced')"
done
# Let the last batch leave (every second), then stop the receiver.
sleep 2
kill -TERM "$receiver_pid"
wait "$receiver_pid" || true
spans=$(sed -n 's/^received \([0-9]*\) spans/\1/p' "$work/receiver.out")
echo "spans received: $spans, from $traced_requests traced-node requests (a traced call is 5: call, route, actor, commit, apply)"
