#!/usr/bin/env bash
# Whether the web console costs the gRPC hot path anything, in one run: the
# same loads against three single nodes in alternating rounds on one
# machine:
#   before   the release binary of the last commit without the console
#            (built from a git worktree of BEFORE_REV into target/bench-before)
#   after    this tree's release binary, console idle
#   watched  this tree's binary with four console sessions polling the hot
#            tenant's live quota bars once a second each (a browser polls
#            every 2 s)
# Loads: ShouldRateLimit (fast domain, one hot tenant, 8x32) and unary
# Increment (fast, 200 tenants, direct, 4x32).
# Usage: benches/console_cost.sh [seconds per run, default 10] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
before_rev=${BEFORE_REV:-45a3119}
source benches/lib.sh
after=$(release_bin)
if ! [ -x target/bench-before/release/quotad ] || [ "$(cat target/bench-before/rev 2>/dev/null)" != "$before_rev" ]; then
  git worktree add --detach "$work/before" "$before_rev" >/dev/null 2>&1
  (cd "$work/before" && CARGO_TARGET_DIR="$OLDPWD/target/bench-before" cargo build --release --quiet)
  git worktree remove --force "$work/before"
  echo "$before_rev" >target/bench-before/rev
fi
before=$PWD/target/bench-before/release/quotad
token=$(token_for "$after")
printf '[[domains]]\ndomain = "fast"\nconsistency = "fast"\n\n[[domains]]\ndomain = "*"\n' >"$work/rls.toml"

names=("before" "after" "watched")
bins=("$before" "$after" "$after")
bases=(7800 7810 7820)
for i in 0 1 2; do
  start_node "${bins[$i]}" "$work/node$i" "${bases[$i]}" --data-plane-auth off --envoy-config "$work/rls.toml"
done

q() { # config index, quotad client arguments...
  local i=$1 base=${bases[$1]}
  shift
  "${bins[$i]}" --http "http://127.0.0.1:$((base + 2))" --grpc "http://127.0.0.1:$((base + 1))" \
    --token "$token" "$@"
}
for i in 0 1 2; do
  for n in 1 200; do
    q "$i" bench --op check --tenants "$n" --tenants-file "$work/t$i-$n" --duration-secs 1 >/dev/null 2>&1
  done
done

# Four console sessions on the third node, each fetching the hot tenant's
# quota section (what the overview's bars poll) every second.
http="http://127.0.0.1:$((bases[2] + 2))"
hot=$(head -1 "$work/t2-1")
for s in 1 2 3 4; do
  jar=$work/jar$s
  curl -sf -c "$jar" "$http/console/signin" >/dev/null
  nonce=$(awk '$6 == "quotad_signin" { print $7 }' "$jar")
  curl -sf -b "$jar" -c "$jar" -o /dev/null --data-urlencode "_csrf=$nonce" \
    --data-urlencode "credential=$token" --data-urlencode "next=/console" "$http/console/signin"
  curl -sf -b "$jar" "$http/console/tenants/$hot/quotas" | grep -q 'data-quota=' ||
    { echo "console session $s cannot read the quota section" >&2; exit 1; }
  (while sleep 1; do curl -sf -b "$jar" -o /dev/null "$http/console/tenants/$hot/quotas" || exit 1; done) &
  pids+=("$!")
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
    for i in 0 1 2; do
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
print("| load | " + " | ".join(names) + " | after / before | watched / before |")
print("|---|" + "---|" * (len(names) + 2))
for l, load in enumerate(loads):
    med = [statistics.median(runs[(l, i)]) for i in range(len(names))]
    cells = [f"{m:,.0f}/s" for m in med]
    print(f"| {load} | " + " | ".join(cells) + f" | {med[1] / med[0]:.3f} | {med[2] / med[0]:.3f} |")
PY
