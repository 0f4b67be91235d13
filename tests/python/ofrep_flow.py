"""OpenFeature's Python SDK with its OFREP provider, both from PyPI, reads a
tenant's flags from a quotad node: tier defaults, the tenant's own value, a
flag its tier does not allow (DISABLED with the default), unknown flags and
type mismatches as errors, a tenant's API key limited to its tenant, and
ETag revalidation of the bulk evaluation (with `requests`, the provider's
own HTTP client: the server-side provider evaluates flag by flag)."""
import argparse
import sys

import requests
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

p = argparse.ArgumentParser()
p.add_argument("--http", required=True)
p.add_argument("--service-token", required=True)
p.add_argument("--operator-token", required=True)
p.add_argument("--pro", required=True, help="a PROFESSIONAL tenant whose max_context_tokens is 65536")
p.add_argument("--free", required=True, help="a FREE tenant")
p.add_argument("--free-key", required=True, help="an API key of the FREE tenant (check scope)")
a = p.parse_args()

failures = []


def expect(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got!r}, want {want!r}")


def bearer(token):
    return lambda: {"Authorization": f"Bearer {token}"}


api.set_provider(OFREPProvider(a.http, headers_factory=bearer(a.service_token)), domain="svc")
api.set_provider(OFREPProvider(a.http, headers_factory=bearer(a.free_key)), domain="key")
svc = api.get_client("svc")
key = api.get_client("key")
pro = EvaluationContext(targeting_key=a.pro)
free = EvaluationContext(targeting_key=a.free)

# The tier's default.
d = svc.get_boolean_details("streaming_responses", False, pro)
expect("tier default", (d.value, d.reason, d.variant), (True, Reason.DEFAULT, "professional"))
d = svc.get_boolean_details("streaming_responses", True, free)
expect("catalog default", (d.value, d.reason, d.variant), (False, Reason.STATIC, "default"))
# The tenant's own value.
d = svc.get_integer_details("max_context_tokens", 0, pro)
expect("tenant value", (d.value, d.reason, d.variant), (65536, Reason.TARGETING_MATCH, "tenant"))
# A flag the tier does not allow: the flag's default, DISABLED.
d = svc.get_boolean_details("beta_models", True, free)
expect("forbidden by tier", (d.value, d.reason, d.error_code), (False, Reason.DISABLED, None))
d = svc.get_string_details("model_routing", "x", pro)
expect("static", (d.value, d.reason), ("balanced", Reason.STATIC))
# Errors fall back to the caller's default.
d = svc.get_boolean_details("no_such_flag", True, pro)
expect("unknown flag", (d.value, d.error_code), (True, ErrorCode.FLAG_NOT_FOUND))
d = svc.get_string_details("max_context_tokens", "fallback", pro)
expect("type mismatch", (d.value, d.error_code), ("fallback", ErrorCode.TYPE_MISMATCH))
d = svc.get_boolean_details("beta_models", True, EvaluationContext())
expect("no targeting key", (d.value, d.error_code), (True, ErrorCode.TARGETING_KEY_MISSING))
# A tenant's key reads its own tenant only.
d = key.get_integer_details("max_context_tokens", 0, free)
expect("own key", (d.value, d.reason), (8192, Reason.STATIC))
d = key.get_integer_details("max_context_tokens", 7, pro)
expect("another tenant's key", (d.value, d.error_code), (7, ErrorCode.GENERAL))

# Bulk evaluation with ETag revalidation.
bulk = a.http.rstrip("/") + "/ofrep/v1/evaluate/flags"
auth = {"Authorization": f"Bearer {a.service_token}"}
body = {"context": {"targetingKey": a.pro}}
r = requests.post(bulk, json=body, headers=auth, timeout=10)
expect("bulk status", r.status_code, 200)
etag = r.headers.get("ETag")
flags = {f["key"]: f for f in r.json()["flags"]}
expect("bulk value", flags["max_context_tokens"]["value"], 65536)
expect("bulk reason", flags["beta_models"]["reason"], "STATIC")
r = requests.post(bulk, json=body, headers={**auth, "If-None-Match": etag}, timeout=10)
expect("revalidated unchanged", (r.status_code, r.headers.get("ETag")), (304, etag))
change = requests.put(
    f"{a.http.rstrip('/')}/api/v1/tenants/{a.pro}/flags/max_context_tokens",
    json={"value": 100000},
    headers={"Authorization": f"Bearer {a.operator_token}"},
    timeout=10,
)
expect("change", change.status_code, 200)
r = requests.post(bulk, json=body, headers={**auth, "If-None-Match": etag}, timeout=10)
expect("revalidated after a change", r.status_code, 200)
expect("a new etag", r.headers.get("ETag") != etag, True)
expect("the new value", {f["key"]: f for f in r.json()["flags"]}["max_context_tokens"]["value"], 100000)
d = svc.get_integer_details("max_context_tokens", 0, pro)
expect("sdk sees the change", d.value, 100000)

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("ofrep flow: all good")
