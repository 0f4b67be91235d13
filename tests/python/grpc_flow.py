"""A third-party client of quotad: Python grpcio with stubs generated from
proto/ at run time, plus the REST control plane through urllib.

Usage: grpc_flow.py --grpc HOST:PORT --http http://HOST:PORT --proto-root DIR --token JWT
Exits non-zero on the first failed expectation.
"""
import argparse
import json
import sys
import tempfile
import urllib.request
import uuid

import grpc
from grpc_tools import protoc


TOKEN = None


def rest(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def expect(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


class Bearer(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token):
        self.metadata = (("authorization", f"Bearer {token}"),)

    def _with(self, details):
        return grpc_call_details(details, tuple(details.metadata or ()) + self.metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with(details), request)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._with(details), requests)


def grpc_call_details(d, metadata):
    class Details(grpc.ClientCallDetails):
        pass
    out = Details()
    out.method, out.timeout, out.metadata = d.method, d.timeout, metadata
    out.credentials, out.wait_for_ready, out.compression = d.credentials, d.wait_for_ready, d.compression
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpc", required=True)
    ap.add_argument("--http", required=True)
    ap.add_argument("--proto-root", required=True)
    ap.add_argument("--token", required=True, help="bearer token for the control plane and the gRPC port")
    a = ap.parse_args()
    global TOKEN
    TOKEN = a.token

    out = tempfile.mkdtemp(prefix="quotad-py-")
    rc = protoc.main(["protoc", f"-I{a.proto_root}", f"--python_out={out}",
                      f"--grpc_python_out={out}", "quotad/v1/quota.proto"])
    expect(rc == 0, "stubs generated from proto/quotad/v1/quota.proto")
    sys.path.insert(0, out)
    from quotad.v1 import quota_pb2 as pb
    from quotad.v1 import quota_pb2_grpc as rpc

    channel = grpc.insecure_channel(a.grpc)
    # Every QuotaService call carries the credential, as grpcio clients add
    # metadata: a client interceptor.
    stub = rpc.QuotaServiceStub(grpc.intercept_channel(channel, Bearer(a.token)))
    try:
        rpc.QuotaServiceStub(channel).Check(pb.CheckRequest(tenant_id=str(uuid.uuid4()), quota="api_requests", amount=1))
        expect(False, "a call without a credential should fail")
    except grpc.RpcError as e:
        expect(e.code() == grpc.StatusCode.UNAUTHENTICATED, f"no credential: {e.code()} ({e.details()})")

    # Server reflection (grpc.reflection.v1) lists the service. grpcio-reflection
    # ships the v1alpha messages, which are the same on the wire.
    from grpc_reflection.v1alpha import reflection_pb2 as refl
    info = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                 request_serializer=refl.ServerReflectionRequest.SerializeToString,
                                 response_deserializer=refl.ServerReflectionResponse.FromString)
    answers = list(info(iter([refl.ServerReflectionRequest(list_services="")]), timeout=10))
    names = [s.name for s in answers[0].list_services_response.service]
    expect("quotad.v1.QuotaService" in names, f"reflection lists quotad.v1.QuotaService ({names})")

    slug = "py-" + uuid.uuid4().hex[:8]
    status, body = rest(a.http, "POST", "/api/v1/tenants", {"name": "Python Co", "slug": slug, "tier": "FREE"})
    expect(status == 201 and body["success"], f"tenant created over REST ({status})")
    tenant = body["data"]["id"]
    status, body = rest(a.http, "PUT", f"/api/v1/tenants/{tenant}/quotas/api_requests",
                        {"limit": 5, "action": "block"})
    expect(status == 200 and body["data"]["limit"] == 5, "api_requests limit set to 5")

    verdicts = []
    for i in range(7):
        d = stub.Increment(pb.IncrementRequest(tenant_id=tenant, quota="api_requests", amount=1,
                                               idempotency_key=f"py-{i}"))
        verdicts.append(d.allowed)
    expect(verdicts == [True] * 5 + [False] * 2, f"5 of 7 increments admitted ({verdicts})")
    d = stub.Increment(pb.IncrementRequest(tenant_id=tenant, quota="api_requests", amount=1,
                                           idempotency_key="py-6"))
    expect(d.verdict == pb.VERDICT_DENIED and d.limit == 5 and d.remaining == 0, "denied with limit and remaining")
    d = stub.Increment(pb.IncrementRequest(tenant_id=tenant, quota="api_requests", amount=1,
                                           idempotency_key="py-0"))
    expect(d.allowed and d.replayed, "retry with the same key replays the first answer")

    u = stub.GetUsage(pb.GetUsageRequest(tenant_id=tenant, quota="api_requests"))
    expect(len(u.quotas) == 1 and u.quotas[0].used == 5, f"GetUsage reports 5 ({u.quotas[0].used})")

    c = stub.Check(pb.CheckRequest(tenant_id=tenant, quota="compute_hours", amount=10))
    expect(c.allowed and c.usage == 0 and c.limit == 10000, "Check on compute_hours")

    r = stub.Reserve(pb.ReserveRequest(tenant_id=tenant, quota="gpu_hours", amount=600, ttl_ms=30000))
    expect(r.decision.allowed and r.reservation_id, "reservation admitted")
    s = stub.Settle(pb.SettleRequest(tenant_id=tenant, reservation_id=r.reservation_id, actual=250))
    expect(s.usage == 250, "settled at the actual amount")

    for req, code in [
        (pb.IncrementRequest(tenant_id=tenant, quota="api_requests", amount=0), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.IncrementRequest(tenant_id=str(uuid.uuid4()), quota="api_requests", amount=1), grpc.StatusCode.NOT_FOUND),
        (pb.IncrementRequest(tenant_id="nope", quota="api_requests", amount=1), grpc.StatusCode.INVALID_ARGUMENT),
    ]:
        try:
            stub.Increment(req)
            expect(False, f"{req} should fail")
        except grpc.RpcError as e:
            expect(e.code() == code, f"bad input answered {e.code()} ({e.details()})")

    u = stub.GetUsage(pb.GetUsageRequest(tenant_id=tenant, quota="api_requests"))
    expect(u.quotas[0].used == 5, "errors changed nothing")
    print("python grpc flow: all good")


if __name__ == "__main__":
    main()
