"""The web console in a real browser: Debian's Chromium, headless, driven by
Playwright for Python (the system browser; Playwright downloads none).

Scenarios (--scenario), each against nodes the Rust test started and
data it set up:
  operator  sign in, search, open a tenant, watch a quota bar fill live
            from gRPC increments, a bad edit shows its field error and
            changes nothing, a good edit is in the audit page, the usage
            chart's points and CSV, settings with a field error
  viewer    a viewer sees no edit controls; a forged post with the viewer's
            session and CSRF token is 403 (and audited); a post without the
            token is 403 even for the owner
  cluster   a session works on every node of a cluster; a forged cookie, one
            from another deployment and a signed-out one are refused
  pages     every page at desktop and phone widths: axe-core finds no
            serious or critical violation; a screenshot of each
  sharing   a consumer finds a policy in the marketplace and asks for it;
            the provider approves it; both see the grant; the statement
            exports as CSV
  brand     a branded tenant's colours and logo on every one of its pages;
            a tenant whose tier lost branding in the platform's look; a
            white-labelled tenant's console on its verified custom domain
            (resolved to 127.0.0.1 by Chromium's host rules) with no trace
            of the platform's name, signed out and in
  sso       a tenant's user signs in through its OIDC issuer
            (oidc-provider-mock): the organisation on the sign-in page, the
            issuer's form, back into the tenant's console as the SSO
            identity, and no further than that tenant

Exits non-zero on the first failed expectation. Every page load is also
checked for Content-Security-Policy violations (the console has no inline
script or style, so there must be none).
"""
import argparse
import json
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

A = None


def expect(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def rest(method, path, body=None, token=None, base=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {token or A.operator}"}
    req = urllib.request.Request((base or A.http[0]) + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def quota(name):
    status, body = rest("GET", f"/api/v1/tenants/{A.tenant}/quotas/{name}")
    expect(status == 200, f"REST reads quota {name} ({status})")
    return body["data"]


class Grpc:
    """Increments through the real gRPC port with grpcio, stubs generated
    from proto/ at run time (as the Python client test does)."""

    def __init__(self):
        import grpc
        from grpc_tools import protoc
        out = tempfile.mkdtemp(prefix="quotad-console-py-")
        rc = protoc.main(["protoc", f"-I{A.proto_root}", f"--python_out={out}",
                          f"--grpc_python_out={out}", "quotad/v1/quota.proto"])
        expect(rc == 0, "gRPC stubs generated")
        sys.path.insert(0, out)
        from quotad.v1 import quota_pb2, quota_pb2_grpc
        self.pb = quota_pb2
        self.stub = quota_pb2_grpc.QuotaServiceStub(grpc.insecure_channel(A.grpc))
        self.metadata = (("authorization", f"Bearer {A.service}"),)

    def spend(self, quota_name, amount):
        d = self.stub.Increment(self.pb.IncrementRequest(tenant_id=A.tenant, quota=quota_name, amount=amount),
                                metadata=self.metadata, timeout=10)
        expect(d.allowed, f"gRPC Increment of {amount} {quota_name} admitted")


def watch_csp(page, where):
    """Fail on any CSP violation the page reports."""
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    return lambda: expect(not violations, f"no CSP violation on {where} ({violations[:2]})")


def sign_in(page, base, credential):
    page.goto(base + "/console")
    expect("/console/signin" in page.url, f"unsigned visit goes to sign-in ({page.url})")
    page.fill("#credential", credential)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def launch(p):
    chromium = A.chromium
    expect(os.path.exists(chromium), f"Chromium at {chromium}")
    return p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)


def shot(page, name):
    if A.shots:
        os.makedirs(A.shots, exist_ok=True)
        page.screenshot(path=os.path.join(A.shots, f"{name}.png"), full_page=True)


# ----------------------------------------------------------------- operator

def operator(p):
    g = Grpc()
    g.spend("llm_tokens", 420)
    browser = launch(p)
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    csp_ok = watch_csp(page, "the operator's pages")
    base = A.http[0]
    sign_in(page, base, A.operator)
    expect(page.url.endswith("/console/tenants"), f"an operator lands on the tenant list ({page.url})")

    # Create a tenant: a bad slug is shown next to its field, then a good one.
    page.fill("#new-name", "Hooli")
    page.fill("#new-slug", "Not A Slug!")
    page.click("form.create button[type=submit]")
    page.wait_for_load_state()
    expect(page.locator("#new-slug-error").count() == 1, f"a bad slug's error is next to it ({page.locator('.error').all_inner_texts()})")
    expect(page.input_value("#new-name") == "Hooli", "what was typed is kept")
    page.fill("#new-slug", "hooli")
    page.select_option("#new-tier", "STARTER")
    page.fill("#new-trialDays", "14")
    page.click("form.create button[type=submit]")
    page.wait_for_load_state()
    expect("The tenant was created" in page.inner_text("main") and "14 days left" in page.inner_text("main"),
           "the new tenant opens, on a 14-day trial")
    page.goto(base + "/console/tenants?trial=yes")
    names = page.locator("table.tenants tbody th").all_inner_texts()
    expect(names == ["Hooli"], f"the trial filter finds it alone ({names})")
    page.goto(base + "/console/tenants?tier=FREE&sort=-name")
    names = page.locator("table.tenants tbody th").all_inner_texts()
    expect(names == ["Umbrella Labs", "Initech", "Globex"], f"filtered by tier and sorted Z–A ({names})")

    # Find the tenant by a piece of its name, among the others.
    page.goto(base + "/console/tenants")
    page.fill("#q", A.tenant_name.split()[0].lower())
    page.click("form[role=search] button[type=submit]")
    page.wait_for_load_state()
    rows = page.locator("table.tenants tbody tr")
    expect(rows.count() == 1, f"the search finds one tenant ({rows.count()} rows)")
    page.get_by_role("link", name=A.tenant_name).click()
    page.wait_for_load_state()
    expect(page.url.endswith(f"/console/tenants/{A.tenant}"), f"the tenant opens ({page.url})")

    card = page.locator('li.quota[data-quota="llm_tokens"]')
    expect(card.locator(".usage").get_attribute("data-usage") == "420",
           "the bar shows the 420 spent over gRPC a moment before")
    width = float(card.locator("rect.fill").get_attribute("width"))
    expect(abs(width - 42.0) < 0.01, f"the bar is 42% full ({width})")
    expect("42.0%" in card.inner_text(), "the percentage is written out")

    # Live: more usage over gRPC shows without reloading the page.
    page.evaluate("window.__notReloaded = true")
    g.spend("llm_tokens", 500)
    page.wait_for_function(
        """() => document.querySelector('li.quota[data-quota="llm_tokens"] .usage')?.dataset.usage === '920'""",
        timeout=10000)
    expect(page.evaluate("window.__notReloaded === true"), "the bar updated in place (no reload)")
    card = page.locator('li.quota[data-quota="llm_tokens"]')
    expect("t2" in card.locator("rect.fill").get_attribute("class"), "at 92% the bar has passed two of its three thresholds")
    expect("Above the 90% threshold" in card.inner_text(), "and says so in words")
    shot(page, "operator-overview-live")

    # A bad edit: the field's error, nothing changed.
    card.get_by_role("link", name=re.compile("Edit")).click()
    page.wait_for_load_state()
    page.fill("#limit", "-5")
    page.click("form.edit button[type=submit]")
    page.wait_for_load_state()
    err = page.locator("#limit-error")
    expect(err.count() == 1 and err.inner_text().strip() != "", f"the limit's error is next to it ({err.all_inner_texts()})")
    expect(page.get_attribute("#limit", "aria-invalid") == "true", "the limit field is marked invalid")
    expect(page.input_value("#limit") == "-5", "the typed value is kept to correct")
    expect(quota("llm_tokens")["limit"] == 1000, "the bad edit changed nothing")
    page.fill("#limit", "2000")
    page.fill("#alertThresholds", "80, 90, 95")
    page.click("form.edit button[type=submit]")
    page.wait_for_load_state()
    expect(page.url.endswith("?done=quota"), f"a good edit goes back to the overview ({page.url})")
    expect(quota("llm_tokens")["limit"] == 2000, "the good edit is applied")
    card = page.locator('li.quota[data-quota="llm_tokens"]')
    expect("46.0%" in card.inner_text(), "the bar shows the new limit (920 of 2,000)")

    # The audit page has it, with its before and after.
    page.get_by_role("link", name="Audit").click()
    page.wait_for_load_state()
    expect("Chain valid" in page.inner_text("#chain"), "the audit chain verifies")
    ev = page.locator('li.event[data-action="quota.updated"]').last
    ev.locator("summary").click()
    after = ev.locator("pre.after").inner_text()
    before = ev.locator("pre.before").inner_text()
    expect('"limit": 2000' in after and '"limit": 1000' in before,
           "the edit is in the audit page, limit 1000 before and 2000 after")
    page.fill("#action", "quota.updated")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    actions = set(page.locator("li.event").evaluate_all("els => els.map(e => e.dataset.action)"))
    expect(actions == {"quota.updated"}, f"the action filter keeps only quota.updated ({actions})")

    # Usage: the chart's points are the spends, with the limit line.
    page.get_by_role("link", name="Usage").click()
    page.wait_for_load_state()
    page.select_option("#u-quota", "llm_tokens")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    amounts = page.locator("svg.chart rect.point").evaluate_all("els => els.map(e => Number(e.dataset.amount))")
    expect(len(amounts) >= 24 and sum(amounts) == 920 and max(amounts) > 0,
           f"the hourly chart has a point per hour holding the 920 spent ({len(amounts)} points, sum {sum(amounts)})")
    heights = page.locator("svg.chart rect.point").evaluate_all("els => els.map(e => e.getBBox().height)")
    expect(max(heights) > 10, f"the bars are drawn ({max(heights):.1f} px at most)")
    expect(page.locator("svg.chart line.limit").get_attribute("data-limit") == "2000", "the limit line is at 2,000")
    expect(page.locator("svg.chart polyline.total").count() == 1, "the period's running total is drawn")
    expect("Projected exhaustion" in page.inner_text("#stats"), "the statistics show the projected exhaustion")
    shot(page, "operator-usage")
    href = page.get_by_role("link", name="Download the series (CSV)").get_attribute("href")
    r = page.request.get(base + href)
    lines = r.text().strip().splitlines()
    expect(r.status == 200 and r.headers["content-type"].startswith("text/csv"), f"the CSV downloads ({r.status})")
    expect(lines[0] == "start,start_local,amount,used_in_period" and
           sum(int(l.split(",")[2]) for l in lines[1:]) == 920, f"the CSV holds the series ({lines[0]}, {len(lines) - 1} rows)")
    page.select_option("#u-granularity", "day")
    page.select_option("#u-range", "30d")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    days = page.locator("svg.chart rect.point").evaluate_all("els => els.map(e => Number(e.dataset.amount))")
    expect(len(days) == 30 and sum(days) == 920, f"the daily chart over 30 days holds it too ({len(days)} points)")

    # Settings: the platform verifies the tenant's domain; a bad timezone is
    # shown next to its field, a good name saved.
    page.get_by_role("link", name="Settings").click()
    page.wait_for_load_state()
    domain = page.locator('tr[data-domain="quota.acme.example"]')
    expect("_quotad-verify.quota.acme.example TXT" in domain.inner_text(), "the domain shows its TXT record")
    domain.get_by_role("button", name=re.compile("Verify")).click()
    page.wait_for_load_state()
    expect("✓ verified" in page.locator('tr[data-domain="quota.acme.example"]').inner_text(), "the operator verified it")
    page.fill("#s-timezone", "Mars/Olympus")
    page.click("form.edit button[type=submit]")
    page.wait_for_load_state()
    expect(page.locator("#s-timezone-error").count() == 1, f"the timezone's error is next to it ({page.locator('.error').all_inner_texts()})")
    page.fill("#s-timezone", "Europe/Paris")
    page.fill("#s-name", A.tenant_name + " SAS")
    page.click("form.edit button[type=submit]")
    page.wait_for_load_state()
    status, body = rest("GET", f"/api/v1/tenants/{A.tenant}")
    expect(body["data"]["name"] == A.tenant_name + " SAS" and body["data"]["timezone"] == "Europe/Paris",
           "the settings are saved")
    # Suspend and reactivate.
    page.get_by_role("link", name="Overview").click()
    page.wait_for_load_state()
    page.get_by_role("button", name="Suspend").click()
    page.wait_for_load_state()
    expect("SUSPENDED" in page.inner_text("dl.summary"), "the operator suspended the tenant")
    page.get_by_role("button", name="Reactivate").click()
    page.wait_for_load_state()
    expect("ACTIVE" in page.inner_text("dl.summary"), "and reactivated it")
    csp_ok()
    browser.close()


# ------------------------------------------------------------------ sharing

def sharing(p):
    """Globex (consumer) finds Acme's policy in the marketplace and asks;
    Acme (provider) approves it in its console; both see the grant."""
    browser = launch(p)
    consumer = browser.new_context(viewport=DESKTOP).new_page()
    csp_ok = watch_csp(consumer, "the sharing pages")
    sign_in(consumer, A.http[0], A.consumer_owner)
    consumer.goto(A.http[0] + f"/console/tenants/{A.consumer}/sharing")
    consumer.fill("#m-q", "service-123")
    consumer.click("form[role=search] button[type=submit]")
    consumer.wait_for_load_state()
    row = consumer.locator("table.policies tr", has_text="service-123").first
    expect(row.count() == 1 and "0.001 USD" in row.inner_text(), f"the marketplace finds the policy with its price")
    row.locator("input[name=justification]").fill("our chat app needs it")
    row.get_by_role("button", name=re.compile("Request access")).click()
    consumer.wait_for_load_state()
    expect("Access was requested" in consumer.inner_text("main"), "the request is made")

    provider = browser.new_context(viewport=DESKTOP).new_page()
    sign_in(provider, A.http[0], A.owner)
    provider.goto(A.http[0] + f"/console/tenants/{A.tenant}/sharing")
    req = provider.locator("ul.requests li").first
    expect("our chat app needs it" in req.inner_text(), "the provider sees the request with its justification")
    req.get_by_role("button", name="Approve").click()
    provider.wait_for_load_state()
    expect("approved" in provider.inner_text("main"), "approved in the console")
    given = provider.locator("table.grants tr", has_text="service-123")
    expect(given.count() == 1 and "active" in given.inner_text(), "the provider's grants list it as active")
    st = provider.locator("#statement-period")
    expect(st.count() == 1, "the provider sees this month's statement")
    href = provider.get_by_role("link", name="Download the statement (CSV)").get_attribute("href")
    r = provider.request.get(A.http[0] + href)
    expect(r.status == 200 and r.headers["content-type"].startswith("text/csv"), f"the statement exports as CSV ({r.status})")

    consumer.goto(A.http[0] + f"/console/tenants/{A.consumer}/sharing")
    used = consumer.locator("table.grants tr", has_text="service-123")
    expect(used.count() == 1 and "active" in used.inner_text(), "the consumer's grants list it as active")
    csp_ok()
    browser.close()


# ------------------------------------------------------------------- viewer

def post_status(page, path, form):
    r = page.request.post(A.http[0] + path, form=form, max_redirects=0)
    return r.status


def viewer(p):
    browser = launch(p)
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    csp_ok = watch_csp(page, "the viewer's pages")
    sign_in(page, A.http[0], A.viewer)
    expect(page.url.endswith(f"/console/tenants/{A.tenant}"), f"a tenant's viewer lands on its overview ({page.url})")
    expect(page.locator("li.quota").count() > 0, "the viewer sees the quotas")
    expect(page.locator("a.edit").count() == 0, "no Edit link for a viewer")
    forms = page.locator("main form").count()
    expect(forms == 0, f"no form in the page for a viewer ({forms})")
    page.get_by_role("link", name="Members").click()
    page.wait_for_load_state()
    expect(page.locator("main form").count() == 0, "no member forms for a viewer")
    expect(page.get_by_role("link", name="Audit").count() == 0, "no audit link for a viewer (it needs admin)")

    csrf = page.get_attribute("form[action='/console/signout'] input[name=_csrf]", "value")
    expect(bool(csrf), "the session's CSRF token is in the page (sign-out form)")
    status = post_status(page, f"/console/tenants/{A.tenant}/quotas/llm_tokens",
                         {"_csrf": csrf, "limit": "5", "kind": "counter", "period": "monthly", "action": "block"})
    expect(status == 403, f"a forged quota edit with the viewer's cookie and CSRF token is 403 ({status})")
    status = post_status(page, f"/console/tenants/{A.tenant}/members",
                         {"_csrf": csrf, "userId": "mallory", "role": "owner"})
    expect(status == 403, f"a forged member add is 403 ({status})")
    expect(quota("llm_tokens")["limit"] == 1000, "the forged edit changed nothing")
    status, body = rest("GET", f"/api/v1/tenants/{A.tenant}/audit?action=access.denied")
    denied = [e for e in body["data"]["events"] if e["actor"] == "vic"]
    expect(len(denied) >= 2 and all(e["target"] == "console" for e in denied),
           f"the forged posts are in the tenant's audit chain as access.denied by vic ({len(denied)})")
    csp_ok()

    # The owner may edit, but not without the form's CSRF token.
    owner = browser.new_context(viewport=DESKTOP).new_page()
    sign_in(owner, A.http[0], A.owner)
    status = post_status(owner, f"/console/tenants/{A.tenant}/quotas/llm_tokens", {"limit": "5"})
    expect(status == 403, f"a post without the CSRF token is 403, even for the owner ({status})")
    status = post_status(owner, f"/console/tenants/{A.tenant}/quotas/llm_tokens", {"_csrf": csrf, "limit": "5"})
    expect(status == 403, f"another session's CSRF token is 403 ({status})")
    expect(quota("llm_tokens")["limit"] == 1000, "neither changed anything")
    own = owner.get_attribute("form[action='/console/signout'] input[name=_csrf]", "value")
    status = post_status(owner, f"/console/tenants/{A.tenant}/quotas/llm_tokens",
                         {"_csrf": own, "limit": "1500", "kind": "counter", "period": "monthly",
                          "action": "block", "alertThresholds": "80, 90, 95"})
    expect(status == 303, f"with its own token the owner's edit goes through ({status})")
    expect(quota("llm_tokens")["limit"] == 1500, "and is applied")

    # Members: the last owner cannot be removed, and is told why.
    owner.goto(A.http[0] + f"/console/tenants/{A.tenant}/members")
    row = owner.locator('tr[data-user="alice"]')
    row.get_by_role("button", name=re.compile("Remove")).click()
    owner.wait_for_load_state()
    alert = owner.locator('tr[data-user="alice"] .error')
    expect(alert.count() == 1 and "owner" in alert.inner_text().lower(),
           f"removing the last owner shows why not, next to the row ({alert.all_inner_texts()})")
    status, body = rest("GET", f"/api/v1/tenants/{A.tenant}/members")
    expect(any(m["userId"] == "alice" and m["role"] == "owner" for m in body["data"]), "alice is still the owner")
    # Adding and promoting a member works from the same page.
    owner.fill("#userId", "olga")
    owner.select_option("#add-role", "admin")
    owner.get_by_role("button", name="Add member").click()
    owner.wait_for_load_state()
    expect(owner.locator('tr[data-user="olga"] td.role').inner_text() == "admin", "olga is added as admin")
    browser.close()


# ------------------------------------------------------------------ cluster

def session_cookie(ctx):
    for c in ctx.cookies():
        if c["name"] == "quotad_session":
            return c
    return None


def set_session(ctx, base, value):
    """Present `value` as the session cookie to the node at `base` (and no
    other session cookie for its host)."""
    host = urllib.parse.urlparse(base).hostname
    kept = [c for c in ctx.cookies() if not (c["name"] == "quotad_session" and c["domain"] == host)]
    ctx.clear_cookies()
    ctx.add_cookies(kept + [{"name": "quotad_session", "value": value, "domain": host, "path": "/console",
                             "httpOnly": True, "sameSite": "Strict"}])


def refused(page, base, what):
    page.goto(base + "/console/tenants")
    expect("/console/signin" in page.url, f"{what}: sent to sign-in ({page.url})")
    return page.url


def cluster(p):
    a, b = A.http[0], A.http[1]
    browser = launch(p)
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_in(page, a, A.operator)
    expect(page.url == a + "/console/tenants", f"signed in on node 1 ({page.url})")
    cookie = session_cookie(ctx)
    expect(cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict",
           f"the session cookie is HttpOnly and SameSite=Strict ({cookie and cookie['sameSite']})")
    expect(page.evaluate("document.cookie").find("quotad_session") < 0, "scripts cannot read the session")
    expect(page.evaluate("Object.keys(localStorage).length") == 0, "nothing in localStorage")
    # Node 2 gets the same cookie, as the other backend behind a load
    # balancer would (the test nodes have hosts of their own).
    set_session(ctx, b, cookie["value"])
    page.goto(b + "/console/tenants")
    expect(page.url == b + "/console/tenants" and page.locator("h1").inner_text() == "Tenants",
           f"the session made on node 1 works on node 2 ({page.url})")
    page.goto(b + f"/console/tenants/{A.tenant}")
    expect(page.locator("li.quota").count() > 0, "node 2 shows the tenant's quotas")

    original = cookie["value"]
    head, payload, tag = original.split(".")
    import base64
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    set_session(ctx, a, f"{head}.{forged}.{tag}")
    url = refused(page, a, "a session cookie with a changed payload")
    expect("signature" in urllib.parse.unquote(url), "and told the signature is not valid")
    set_session(ctx, a, "v1.bm90IGEgc2Vzc2lvbg.AAAA")
    refused(page, a, "a made-up session cookie")

    # Another deployment (another secret) signs its own sessions; this one
    # does not take them.
    other = A.other
    sign_in(page, other, A.other_operator)
    expect(page.url == other + "/console/tenants", "signed in on another deployment")
    foreign = session_cookie(ctx)["value"]
    set_session(ctx, a, foreign)
    url = refused(page, a, "a session from another deployment")
    expect("signature" in urllib.parse.unquote(url), "refused for its signature")

    # Sign out on node 1: the session is refused by both nodes, even when
    # the old cookie is presented again.
    set_session(ctx, a, original)
    page.goto(a + "/console/tenants")
    expect(page.url == a + "/console/tenants", "the original session still works")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    expect("signed out" in page.inner_text("main"), "signing out says so")
    expect(session_cookie(ctx) is None, "signing out deletes the cookie")
    set_session(ctx, a, original)
    url = refused(page, a, "the signed-out session presented again on node 1")
    expect("signed out" in urllib.parse.unquote(url), "refused as signed out")
    set_session(ctx, b, original)
    deadline = time.time() + 5
    while True:
        page.goto(b + "/console/tenants")
        if "/console/signin" in page.url or time.time() > deadline:
            break
        time.sleep(0.1)
    expect("/console/signin" in page.url, f"node 2 refuses the signed-out session too ({page.url})")
    browser.close()


# -------------------------------------------------------------------- pages

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def axe_check(page, name):
    page.add_script_tag(path=A.axe)
    result = page.evaluate("async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS)
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    for v in bad:
        print(f"  {name}: {v['impact']} {v['id']}: {v['help']} ({len(v['nodes'])} nodes: "
              f"{[n['target'] for n in v['nodes'][:3]]})", file=sys.stderr)
    expect(not bad, f"axe: no serious or critical violation on {name} ({len(result['passes'])} rules pass)")


def pages(p):
    browser = launch(p)
    t = A.tenant
    # axe-core is injected as a script: the context lets it past the CSP
    # (the pages' own scripts are checked under the CSP in the other
    # scenarios).
    ctx = browser.new_context(viewport=DESKTOP, bypass_csp=True)
    page = ctx.new_page()
    sign_in(page, A.http[0], A.operator)
    routes = [
        ("tenants", "/console/tenants"),
        ("overview", f"/console/tenants/{t}"),
        ("quota-edit", f"/console/tenants/{t}/quotas/llm_tokens"),
        ("quota-levels", f"/console/tenants/{t}/quotas/chat/levels"),
        ("members", f"/console/tenants/{t}/members"),
        ("audit", f"/console/tenants/{t}/audit"),
        ("usage", f"/console/tenants/{t}/usage?quota=llm_tokens"),
        ("sharing", f"/console/tenants/{t}/sharing"),
        ("settings", f"/console/tenants/{t}/settings"),
        ("flags", f"/console/tenants/{t}/flags"),
        ("webhooks", f"/console/tenants/{t}/webhooks"),
        ("integrations", f"/console/tenants/{t}/integrations"),
        ("cluster", "/console/cluster"),
        ("platform-alerts", "/console/platform/webhooks"),
    ]
    # The tenant's pages wear its branding: its colours on the header and
    # its logo, on every page (axe checks them in it).
    page.goto(A.http[0] + f"/console/tenants/{t}")
    header_bg = page.evaluate("getComputedStyle(document.querySelector('header.top')).backgroundColor")
    expect(header_bg == "rgb(91, 42, 134)", f"the header is in the tenant's primary colour ({header_bg})")
    expect(page.locator("img.brand-logo").count() == 1, "the tenant's logo is in the header")
    expect("Acme AI" in page.locator("header.top").inner_text(), "the tenant's product name is in the header")
    # A quota's windows, grants and live scopes, top usage first.
    page.goto(A.http[0] + f"/console/tenants/{t}/quotas/chat/levels")
    scopes = page.locator("table.scope-values tbody tr").evaluate_all("rs => rs.map(r => r.dataset.scope)")
    expect(scopes == ["premium_bob", "alice", "carol"], f"live scopes by usage ({scopes})")
    expect(page.locator("table.levels tbody tr").count() == 2, "the quota and its per-second window")
    expect(page.locator("#grant-balance").inner_text() == "500", "the grant's balance")
    expect(page.locator("#rollover").inner_text().startswith("on"), "rollover shown")
    page.goto(A.http[0] + f"/console/tenants/{t}")
    expect(page.locator("li.quota[data-quota='chat'] a.levels").count() == 1, "the overview links the quota's levels")
    for name, path in routes:
        for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(size)
            page.goto(A.http[0] + path)
            if path.startswith(f"/console/tenants/{t}"):
                expect(page.locator(f"link[href^='/console/brand/{t}.css']").count() == 1, f"{name} wears the tenant's branding")
            expect(page.url.endswith(path) and page.locator("h1").count() == 1, f"{name} opens at {size['width']} px")
            # Nothing wider than the screen (the page scrolls down, not sideways).
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            expect(overflow <= 0, f"{name} fits {size['width']} px ({overflow} px over)")
            axe_check(page, f"{name} at {size['width']} px")
            shot(page, f"{name}-{size_name}")
    # The pages without a session, and an error page.
    out = browser.new_context(viewport=DESKTOP, bypass_csp=True).new_page()
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        out.set_viewport_size(size)
        out.goto(A.http[0] + "/console/signin")
        axe_check(out, f"sign-in at {size['width']} px")
        shot(out, f"signin-{size_name}")
    page.goto(A.http[0] + "/console/tenants/00000000-0000-0000-0000-000000000000")
    axe_check(page, "an error page")
    browser.close()


# -------------------------------------------------------------------- brand

TENANT_PAGES = ["", "/usage", "/members", "/audit", "/sharing", "/flags", "/webhooks",
                "/integrations", "/settings"]


def header_bg(page):
    return page.evaluate("getComputedStyle(document.querySelector('header.top')).backgroundColor")


def no_platform_name(page, where):
    html = page.content().lower()
    title = page.title().lower()
    expect("quotad" not in html and "quotad" not in title,
           f"{where}: no trace of the platform's name (title {page.title()!r})")


def brand(p):
    port = A.http[0].rsplit(":", 1)[1]
    white = f"http://{A.white_host}:{port}"
    # The custom domain resolves to this machine; every other name to
    # nothing (the tenants' logo URLs stay unfetched, nothing leaves).
    rules = f"--host-resolver-rules=MAP {A.white_host} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
    browser = p.chromium.launch(executable_path=A.chromium, headless=True, args=CHROMIUM_ARGS + [rules])
    page = browser.new_context(viewport=DESKTOP).new_page()
    csp_ok = watch_csp(page, "the branded pages")
    sign_in(page, A.http[0], A.operator)
    page.goto(A.http[0] + "/console/tenants")
    platform_bg = header_bg(page)
    expect("quotad" in page.locator("header.top .brand").inner_text().lower(),
           "the platform's own pages wear its mark")
    # A branded tenant: its colour and logo on each of its pages.
    for path in TENANT_PAGES:
        page.goto(A.http[0] + f"/console/tenants/{A.branded}{path}")
        where = f"branded tenant page {path or '/'}"
        expect(header_bg(page) == "rgb(91, 42, 134)", f"{where} in its primary colour ({header_bg(page)})")
        logo = page.locator("header.top img.brand-logo")
        expect(logo.count() == 1 and logo.get_attribute("src") == "https://cdn.pro.test/logo.svg",
               f"{where} shows its logo")
        expect("Pro Works" in page.locator("header.top").inner_text(), f"{where} shows its product name")
    # Its tier lost custom branding: the platform's look (the settings stay).
    for path in TENANT_PAGES:
        page.goto(A.http[0] + f"/console/tenants/{A.lapsed}{path}")
        where = f"lapsed tenant page {path or '/'}"
        expect(header_bg(page) == platform_bg, f"{where} in the platform's colour ({header_bg(page)})")
        expect(page.locator("img.brand-logo").count() == 0, f"{where} shows no tenant logo")
        # (the audit page lists the branding change itself: the header is
        # what must not wear it)
        expect("Lapsed Co" not in page.locator("header.top").inner_text() and "Lapsed Co" not in page.title(),
               f"{where} does not use the tenant's name")
        expect("quotad" in page.locator("header.top .brand").inner_text().lower(), f"{where} wears the platform's mark")
    csp_ok()
    # White label on the tenant's own domain: a fresh browser profile (no
    # session there yet), the sign-in page and every page after it.
    w = browser.new_context(viewport=DESKTOP).new_page()
    w_csp_ok = watch_csp(w, "the white-labelled pages")
    w.goto(white + "/console")
    expect("/console/signin" in w.url, f"the custom domain's console asks for sign-in ({w.url})")
    no_platform_name(w, "white-label sign-in")
    expect("Glow AI" in w.locator("header.top").inner_text(), "the sign-in page wears the tenant's name")
    expect(header_bg(w) == "rgb(0, 89, 79)", f"the sign-in page in the tenant's colour ({header_bg(w)})")
    w.fill("#credential", A.operator)
    w.click("button[type=submit]")
    w.wait_for_load_state()
    for path in TENANT_PAGES:
        w.goto(white + f"/console/tenants/{A.tenant}{path}")
        where = f"white-labelled page {path or '/'}"
        expect(w.url.startswith(white) and w.locator("h1").count() == 1, f"{where} opens on the custom domain")
        no_platform_name(w, where)
        expect(header_bg(w) == "rgb(0, 89, 79)", f"{where} in the tenant's colour")
        logo = w.locator("header.top img.brand-logo")
        expect(logo.count() == 1 and logo.get_attribute("src") == "https://cdn.glow.test/mark.svg",
               f"{where} shows the tenant's logo")
        shot(w, f"white-label{path.replace('/', '-') or '-overview'}")
    w_csp_ok()
    browser.close()


# ---------------------------------------------------------------------- sso

def sso(p):
    browser = launch(p)
    page = browser.new_context(viewport=DESKTOP).new_page()
    csp_ok = watch_csp(page, "the SSO sign-in")
    page.goto(A.http[0] + "/console/signin")
    page.fill("#org", A.org)
    page.click("section.sso button[type=submit]")
    page.wait_for_url(A.issuer + "/**", timeout=15000)
    expect(page.url.startswith(A.issuer), f"the organisation's issuer asks who signs in ({page.url})")
    page.fill("input[name=sub]", A.sub)
    page.click("button:has-text('Authorize')")
    page.wait_for_url(f"**/console/tenants/{A.tenant}", timeout=15000)
    expect(page.url.startswith(A.http[0]), f"back on the console, in the tenant ({page.url})")
    who = page.locator("div.who").inner_text()
    expect(A.expect_user in who, f"signed in as the SSO identity ({who!r})")
    expect(page.locator("h1").count() == 1, "the tenant's overview opens")
    r = page.goto(A.http[0] + f"/console/tenants/{A.consumer}")
    expect(r.status == 403, f"another tenant's console is refused ({r.status})")
    csp_ok()
    browser.close()


def main():
    global A
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", required=True, choices=["operator", "viewer", "cluster", "pages", "sharing", "brand", "sso"])
    ap.add_argument("--http", action="append", required=True, help="a node's REST/console base URL (repeat per node)")
    ap.add_argument("--grpc", help="HOST:PORT of a node's gRPC port")
    ap.add_argument("--proto-root")
    ap.add_argument("--operator", required=True, help="operator token")
    ap.add_argument("--service", help="service token for gRPC")
    ap.add_argument("--viewer", help="token of the tenant's viewer (vic)")
    ap.add_argument("--owner", help="token of the tenant's owner")
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--tenant-name", default="")
    ap.add_argument("--consumer", help="a second tenant, consumer in the sharing scenario")
    ap.add_argument("--consumer-owner", help="token of the consumer's owner")
    ap.add_argument("--other", help="console base URL of another deployment")
    ap.add_argument("--other-operator", help="operator token of the other deployment")
    ap.add_argument("--axe", help="path of axe.min.js")
    ap.add_argument("--branded", help="a PROFESSIONAL tenant with branding (brand)")
    ap.add_argument("--lapsed", help="a tenant whose tier lost its branding (brand)")
    ap.add_argument("--white-host", help="the white-labelled tenant's verified domain (brand)")
    ap.add_argument("--issuer", help="the tenant's OIDC issuer URL (sso)")
    ap.add_argument("--org", help="the tenant's slug, typed on the sign-in page (sso)")
    ap.add_argument("--sub", help="who signs in at the issuer (sso)")
    ap.add_argument("--expect-user", help="the console's name for them (sso)")
    ap.add_argument("--shots", help="directory for screenshots")
    ap.add_argument("--chromium", default=os.environ.get("QUOTAD_TEST_CHROMIUM", "/usr/bin/chromium"))
    A = ap.parse_args()
    with sync_playwright() as p:
        {"operator": operator, "viewer": viewer, "cluster": cluster, "pages": pages,
         "sharing": sharing, "brand": brand, "sso": sso}[A.scenario](p)
    print(f"console {A.scenario}: all good")


if __name__ == "__main__":
    main()
