"""Cross-tenant sharing end to end with third-party clients: REST through
urllib with tenant JWTs, the hot path through Python grpcio (stubs made
from proto/ at run time).

A provider publishes a usage-based model to the marketplace; a consumer
finds it, asks for access; the provider approves; the consumer's
Increments naming the policy are admitted and charged to the consumer;
revocation refuses the next one; the statements' gross is the admitted
units times the price exactly, and fee + net = gross.

Usage: sharing_flow.py --grpc HOST:PORT --http URL --proto-root DIR
         --operator JWT --provider ID --provider-token JWT
         --consumer ID --consumer-token JWT
(the tenants exist; each token is its owner's)
Exits non-zero on the first failed expectation.
"""
import argparse
import json
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal

import grpc
from grpc_tools import protoc


def rest(base, token, method, path, body=None, tenant=None, accept=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    if tenant:
        headers["x-tenant-id"] = tenant
    if accept:
        headers["accept"] = accept
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read().decode()
            return r.status, (raw if accept == "text/csv" else json.loads(raw))
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def expect(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpc", required=True)
    ap.add_argument("--http", required=True)
    ap.add_argument("--proto-root", required=True)
    ap.add_argument("--operator", required=True)
    for who in ("provider", "consumer"):
        ap.add_argument(f"--{who}", required=True)
        ap.add_argument(f"--{who}-token", required=True)
    a = ap.parse_args()

    out = tempfile.mkdtemp(prefix="quotad-py-")
    rc = protoc.main(["protoc", f"-I{a.proto_root}", f"--python_out={out}",
                      f"--grpc_python_out={out}", "quotad/v1/quota.proto"])
    expect(rc == 0, "stubs generated from proto/quotad/v1/quota.proto")
    sys.path.insert(0, out)
    from quotad.v1 import quota_pb2 as pb
    from quotad.v1 import quota_pb2_grpc as rpc

    op = a.operator
    provider, consumer = a.provider, a.consumer
    pam, carl = a.provider_token, a.consumer_token

    s, pol = rest(a.http, pam, "POST", "/api/v1/sharing/policies", {
        "resourceId": "llama-70b", "resourceType": "model", "visibility": "marketplace",
        "permissions": ["read", "execute"],
        "pricing": {"type": "usage_based", "usagePrice": 0.001, "currency": "USD",
                    "unitQuota": "api_requests"},
    })
    expect(s == 201, f"the provider publishes a usage-based model ({s}: {pol})")
    policy = pol["data"]["id"]

    s, page = rest(a.http, carl, "GET", "/api/v1/marketplace?resourceType=model&q=llama")
    expect(s == 200 and [i["id"] for i in page["data"]["items"]] == [policy],
           "the consumer finds it in the marketplace")
    s, req = rest(a.http, carl, "POST", f"/api/v1/sharing/policies/{policy}/request-access",
                  {"justification": "Need this model for our ML pipeline"})
    expect(s == 201 and req["data"]["status"] == "pending", "the consumer asks; the request waits")
    s, dec = rest(a.http, pam, "POST", f"/api/v1/sharing/requests/{req['data']['id']}/approve")
    expect(s == 200 and dec["data"]["grant"]["status"] == "active", "the provider approves")
    grant = dec["data"]["grant"]["id"]

    channel = grpc.insecure_channel(a.grpc)
    stub = rpc.QuotaServiceStub(channel)
    md = (("authorization", f"Bearer {carl}"),)

    def usage():
        r = stub.GetUsage(pb.GetUsageRequest(tenant_id=consumer), metadata=md)
        return {q.quota: q.used for q in r.quotas}["api_requests"]

    before = usage()
    admitted = 0
    for n in range(1, 31):
        d = stub.Increment(pb.IncrementRequest(
            tenant_id=consumer, quota="api_requests", amount=n,
            idempotency_key=f"use-{n}", consistency=pb.CONSISTENCY_STRICT,
            sharing_policy_id=policy), metadata=md)
        if not d.allowed:
            expect(False, f"shared increment {n} refused: {d.reason}")
        admitted += n
    # A retry of an acknowledged increment counts once.
    d = stub.Increment(pb.IncrementRequest(
        tenant_id=consumer, quota="api_requests", amount=30, idempotency_key="use-30",
        consistency=pb.CONSISTENCY_STRICT, sharing_policy_id=policy), metadata=md)
    expect(d.allowed and d.replayed, "a retried shared increment is replayed, not charged again")
    expect(True, "30 shared increments admitted")
    expect(usage() - before == admitted, f"charged to the consumer's own quota ({admitted} units)")
    d = stub.Check(pb.CheckRequest(tenant_id=consumer, quota="api_requests", amount=1,
                                   sharing_policy_id=policy, permission="read"), metadata=md)
    expect(d.allowed, "a check through the grant with the read permission")
    try:
        stub.Check(pb.CheckRequest(tenant_id=consumer, quota="api_requests", amount=1,
                                   sharing_policy_id=policy, permission="download"), metadata=md)
        expect(False, "a permission the grant lacks is refused")
    except grpc.RpcError as e:
        expect(e.code() == grpc.StatusCode.PERMISSION_DENIED and "download" in e.details(),
               f"a permission the grant lacks: PERMISSION_DENIED ({e.details()})")

    s, ended = rest(a.http, pam, "DELETE", f"/api/v1/sharing/grants/{grant}?reason=contract%20over")
    expect(s == 200 and ended["data"]["status"] == "ended", "the provider revokes the grant")
    try:
        stub.Increment(pb.IncrementRequest(
            tenant_id=consumer, quota="api_requests", amount=1, consistency=pb.CONSISTENCY_STRICT,
            sharing_policy_id=policy), metadata=md)
        expect(False, "the next shared increment is refused")
    except grpc.RpcError as e:
        expect(e.code() == grpc.StatusCode.PERMISSION_DENIED and "contract over" in e.details(),
               f"after revocation: PERMISSION_DENIED with the reason ({e.details()})")
    expect(usage() - before == admitted, "the refused increment charged nothing")

    # The provider's totals are fed from the consumer's records.
    deadline = time.time() + 20
    lines = []
    while time.time() < deadline:
        s, st = rest(a.http, pam, "GET", "/api/v1/sharing/statements?as=provider")
        lines = st["data"]["lines"]
        if lines and lines[0]["units"] == admitted:
            break
        time.sleep(0.2)
    expect(len(lines) == 1 and lines[0]["units"] == admitted,
           f"the provider's statement holds the {admitted} admitted units ({lines})")
    line = lines[0]
    gross = Decimal(line["gross"])
    expect(gross == admitted * Decimal("0.001"), f"gross {gross} = {admitted} x 0.001 exactly")
    expect(Decimal(line["platformFee"]) + Decimal(line["providerNet"]) == gross,
           "platform fee + provider net = gross")
    expect(Decimal(line["platformFee"]) == gross * Decimal("0.15"), "the platform's fee is 15%")
    expect(line["consumerTenantId"] == consumer and line["currency"] == "USD", "the line's parties")
    s, mine = rest(a.http, carl, "GET", "/api/v1/sharing/statements?as=consumer")
    expect(mine["data"]["lines"] == lines, "the consumer's statement is the provider's line")
    s, text = rest(a.http, pam, "GET", "/api/v1/sharing/statements?as=provider",
                   accept="text/csv")
    rows = text.strip().split("\n")
    expect(s == 200 and len(rows) == 2 and rows[1].split(",")[6] == line["gross"],
           "the statement as CSV")
    s, plat = rest(a.http, op, "GET", "/api/v1/platform/statements")
    expect(s == 200 and plat["data"]["lines"] == lines, "the platform statement")
    print("python sharing flow: all good")


if __name__ == "__main__":
    main()
