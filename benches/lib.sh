# Shared by the bench scripts (source it from the repository root): a
# scratch dir and the processes started, both cleaned up on exit, a control
# plane token, and starting and stopping single nodes.
work=$(mktemp -d)
export JWT_SECRET=bench-secret-0123456789abcdef
pids=()
node_pid=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The release binary, built first.
release_bin() {
  cargo build --release --quiet
  echo "$PWD/target/release/quotad"
}

token_for() { # binary
  "$1" token --sub bench --role operator
}

wait_ready() { # http address
  for _ in $(seq 1 300); do
    curl -sf "http://$1/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "node at $1 not ready" >&2
  return 1
}

# start_node BINARY DATA_DIR BASE_PORT [serve flags...]: gRPC on BASE+1,
# HTTP on BASE+2, peer on BASE+3; waits until ready, sets node_pid.
start_node() {
  local bin=$1 dir=$2 base=$3
  shift 3
  RUST_LOG=error "$bin" serve --data-dir "$dir" --grpc-addr "127.0.0.1:$((base + 1))" \
    --http-addr "127.0.0.1:$((base + 2))" --peer-addr "127.0.0.1:$((base + 3))" "$@" \
    >/dev/null 2>&1 &
  node_pid=$!
  pids+=("$node_pid")
  wait_ready "127.0.0.1:$((base + 2))"
}

stop_node() {
  kill "$node_pid" 2>/dev/null || true
  wait "$node_pid" 2>/dev/null || true
  node_pid=
}

# rls_body DOMAIN TENANT OUT: a gRPC frame (no compression, 4-byte length)
# around a RateLimitRequest {domain, descriptors [{tenant_id, quota
# api_requests}], hits_addend 1}, for h2load to send as is.
rls_body() {
  python3 - "$1" "$2" "$3" <<'PY'
import struct, sys
domain, tenant, out = sys.argv[1], sys.argv[2], sys.argv[3]
def field(n, b): return bytes([n << 3 | 2]) + varint(len(b)) + b
def varint(v):
    o = b""
    while v >= 0x80: o += bytes([v & 0x7F | 0x80]); v >>= 7
    return o + bytes([v])
entry = lambda k, v: field(1, field(1, k.encode()) + field(2, v.encode()))
desc = field(2, entry("tenant_id", tenant) + entry("quota", "api_requests"))
msg = field(1, domain.encode()) + desc + bytes([3 << 3, 1])
open(out, "wb").write(b"\0" + struct.pack(">I", len(msg)) + msg)
PY
}
