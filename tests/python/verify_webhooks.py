"""Verify captured webhook deliveries with the `standardwebhooks` package
from PyPI (a third-party implementation of Standard Webhooks).

Input: a JSON file of deliveries, each {secret, id, timestamp, signature,
body}. The sender ran on an injected clock (days ahead, for retry
schedules), so each message's freshness is judged at its own timestamp:
the library's clock is set to it while that message is verified. The
signature check itself is the library's, unchanged."""
import json
import sys
from datetime import datetime, timezone

import standardwebhooks.webhooks as sw

messages = json.load(open(sys.argv[1]))
real_datetime = sw.datetime
failures = []
for i, m in enumerate(messages):
    at = datetime.fromtimestamp(int(m["timestamp"]), tz=timezone.utc)

    class At(real_datetime):
        @classmethod
        def now(cls, tz=None):
            return at

    sw.datetime = At
    try:
        headers = {
            "webhook-id": m["id"],
            "webhook-timestamp": m["timestamp"],
            "webhook-signature": m["signature"],
        }
        payload = sw.Webhook(m["secret"]).verify(m["body"], headers)
        if set(payload) != {"type", "timestamp", "data"}:
            failures.append(f"delivery {i}: payload keys {sorted(payload)}")
        # A wrong secret must not verify (the check can fail).
        try:
            sw.Webhook("whsec_" + "A" * 43 + "=").verify(m["body"], headers)
            failures.append(f"delivery {i}: verified with a wrong secret")
        except sw.WebhookVerificationError:
            pass
    except Exception as e:  # noqa: BLE001 - report every failure
        failures.append(f"delivery {i} ({m['id']}): {e}")
    finally:
        sw.datetime = real_datetime

if failures:
    print("\n".join(failures))
    sys.exit(1)
print(f"verified {len(messages)} deliveries")
