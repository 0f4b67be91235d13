#!/usr/bin/env bash
# What authentication and TLS cost on the data plane, in one run: the same
# loads against four single nodes that differ only in --data-plane-auth
# (off, required) and TLS (off, on), in alternating rounds on one machine.
# Loads: ShouldRateLimit (fast domain, one hot tenant, 8x32) and unary
# Increment (fast, 200 tenants, direct, 4x32).
# Usage: benches/auth_cost.sh [seconds per run, default 10] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
source benches/lib.sh
bin=$(release_bin)
token=$(token_for "$bin")
tls=$work/tls
"$bin" certs dev --out "$tls" --hosts 127.0.0.1,localhost >/dev/null
printf '[[domains]]\ndomain = "fast"\nconsistency = "fast"\n\n[[domains]]\ndomain = "*"\n' >"$work/rls.toml"

names=("auth off, plaintext" "auth on, plaintext" "auth off, TLS" "auth on, TLS")
bases=(7700 7710 7720 7730)
for i in 0 1 2 3; do
  base=${bases[$i]}
  auth=$([ $((i % 2)) -eq 1 ] && echo required || echo off)
  flags=(--data-plane-auth "$auth" --envoy-config "$work/rls.toml")
  if [ "$i" -ge 2 ]; then
    flags+=(--tls-cert "$tls/node.pem" --tls-key "$tls/node-key.pem")
  fi
  RUST_LOG=error "$bin" serve --data-dir "$work/node$i" --grpc-addr "127.0.0.1:$((base + 1))" \
    --http-addr "127.0.0.1:$((base + 2))" --peer-addr "127.0.0.1:$((base + 3))" "${flags[@]}" \
    >/dev/null 2>&1 &
  pids+=("$!")
  scheme=$([ "$i" -ge 2 ] && echo https || echo http)
  for _ in $(seq 1 300); do
    curl -sf --cacert "$tls/ca.pem" "$scheme://127.0.0.1:$((base + 2))/readyz" >/dev/null && break
    sleep 0.1
  done
done

q() { # config index, quotad client arguments...
  local i=$1 base=${bases[$1]}
  shift
  local scheme=http tlsflags=()
  if [ "$i" -ge 2 ]; then
    scheme=https
    tlsflags=(--ca-cert "$tls/ca.pem")
  fi
  "$bin" --http "$scheme://127.0.0.1:$((base + 2))" --grpc "$scheme://127.0.0.1:$((base + 1))" \
    --token "$token" "${tlsflags[@]}" "$@"
}
for i in 0 1 2 3; do
  for n in 1 200; do
    q "$i" bench --op check --tenants "$n" --tenants-file "$work/t$i-$n" --duration-secs 1 >/dev/null 2>&1
  done
done

loads=("ShouldRateLimit, fast, 1 hot tenant, 8x32" "Increment, fast, 200 tenants, 4x32")
flags_of() {
  case $1 in
    0) echo "1 --op rls --rls-domain fast --connections 8 --in-flight 32" ;;
    1) echo "200 --op increment --consistency fast --direct --connections 4 --in-flight 32" ;;
  esac
}
results=$work/results
: >"$results"
for r in $(seq 1 "$rounds"); do
  for l in 0 1; do
    read -r n rest <<<"$(flags_of "$l")"
    for i in 0 1 2 3; do
      # shellcheck disable=SC2086
      per=$(q "$i" --json bench --tenants "$n" --tenants-file "$work/t$i-$n" --duration-secs "$secs" $rest 2>/dev/null |
        python3 -c "import json,sys; print(json.load(sys.stdin)['perSecond'])")
      echo "$r $l $i $per" >>"$results"
      echo "round $r: ${loads[$l]}: ${names[$i]}: $per/s" >&2
    done
  done
done

python3 - "$results" "${loads[@]}" -- "${names[@]}" <<'PY'
import statistics, sys
path = sys.argv[1]
rest = sys.argv[2:]
cut = rest.index("--")
loads, names = rest[:cut], rest[cut + 1:]
runs = {}
for line in open(path):
    r, l, i, per = line.split()
    runs.setdefault((int(l), int(i)), []).append(float(per))
print("| load | " + " | ".join(names) + " | auth on / off (plaintext) | auth on / off (TLS) | TLS / plaintext (auth on) |")
print("|---|" + "---|" * (len(names) + 3))
for l, load in enumerate(loads):
    med = [statistics.median(runs[(l, i)]) for i in range(len(names))]
    cells = [f"{m:,.0f}/s" for m in med]
    print(f"| {load} | " + " | ".join(cells)
          + f" | {med[1] / med[0]:.3f} | {med[3] / med[2]:.3f} | {med[3] / med[1]:.3f} |")
PY
