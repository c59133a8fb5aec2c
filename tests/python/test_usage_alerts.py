"""Usage alerts end to end: the real server, a real SMTP server (aiosmtpd) and a real HTTP webhook receiver.

The SMTP server is a submission server as a company runs one: STARTTLS required, with a certificate from a private
CA (made by `trustme`, trusted through TOLLGATE_SMTP_CA), and a login required after TLS.

Traffic through the gateway (the `openai` client) crosses 50, 90 and 100 % of a small monthly token quota; each
threshold is emailed once to the team's members and the tenant's admins and posted once to the tenant's webhook,
signed with the secret the API showed once; the receiver fails the first delivery with a 500, which is retried.
More traffic sends nothing again. A team refused by its rate limit repeatedly gets its own alert. The alerts are
listed by the API with their deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import threading
import time
from email import message_from_bytes
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import quote

import openai
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tollgate_platform import Platform, free_port, start_platform

MODEL = "granite-3.1-2b-base"
QUOTA = 400
RATE_LIMITED_COUNT = 3
SMTP_USER, SMTP_PASSWORD = "tollgate", "p@ss word/1"  # percent-encoded in TOLLGATE_SMTP_URL


class Mailbox:
    """aiosmtpd's handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.logins: list[tuple[str, bool]] = []
        self.lock = threading.Lock()

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        """aiosmtpd's authenticator (called only after STARTTLS: auth_require_tls): the one user and password."""
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            SMTP_USER.encode(), SMTP_PASSWORD.encode())
        with self.lock:
            self.logins.append((mechanism, ok))
        return AuthResult(success=ok)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


class Receiver(BaseHTTPRequestHandler):
    """Answers the first POST with a 500 (to prove the retry), every later one with a 204; keeps them all."""

    received: list[tuple[int, dict, bytes]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with self.lock:
            status = 500 if not self.received else 204
            self.received.append((status, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def smtp(tmp_path_factory) -> Iterator[tuple[Mailbox, int, str]]:
    """(mailbox, port, CA file): STARTTLS with a private CA's certificate for 127.0.0.1, and a login required."""
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    ca_file = tmp_path_factory.mktemp("smtp-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, tls_context=tls, require_starttls=True,
                            authenticator=box.authenticate, auth_required=True, auth_require_tls=True)
    controller.start()
    yield box, port, str(ca_file)
    controller.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/tollgate-alerts"
    server.shutdown()


@pytest.fixture(scope="module")
def platform(smtp) -> Iterator[Platform]:
    _, port, ca_file = smtp
    p = start_platform(extra_env={
        "TOLLGATE_SMTP_URL": f"smtp://{quote(SMTP_USER, safe='')}:{quote(SMTP_PASSWORD, safe='')}@127.0.0.1:{port}?tls=required",
        "TOLLGATE_SMTP_CA": ca_file,
        "TOLLGATE_SMTP_FROM": "Tollgate alerts <alerts@tollgate.test>",
        "TOLLGATE_ALERTS_INTERVAL_S": "1",
        "TOLLGATE_ALERTS_RETRY_S": "1",
        "TOLLGATE_ALERTS_WEBHOOK_PRIVATE": "true",  # the receiver is on loopback
        "TOLLGATE_ALERTS_RATE_LIMITED_COUNT": str(RATE_LIMITED_COUNT),
    })
    yield p
    p.stop()


def verify(secret: str, header: str, body: bytes) -> bool:
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - int(parts["t"])) < 300 and hmac.compare_digest(expected, parts["v1"])


def wait_for(what: str, check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def recipients(p: Platform, team_id: str) -> set[str]:
    """The team's members and the tenant's admins, as the management API lists them."""
    team = p.call("GET", f"/teams/{team_id}")
    members = {m["email"] for m in team["members_list"]}
    admins = {m["email"] for m in p.call("GET", "/members", params={"per_page": 100})["items"]
              if str(m["role"]).lower() == "admin"}
    return members | admins


def quota_alerts(p: Platform, sub: str) -> list[dict]:
    items = p.call("GET", "/usage/alerts", params={"limit": 200})["items"]
    return [a for a in items if a["subscription_id"] == sub and a["kind"] == "quota"]


def test_quota_alerts_are_emailed_and_posted_once_per_threshold(platform: Platform, smtp, receiver: str):
    box, _, _ = smtp
    p = platform
    # The webhook: its secret is shown once, on creation; reading it back never shows it.
    hook = p.call("PUT", "/alerts/webhook", json={"url": receiver})
    secret = hook["secret"]
    assert secret and secret.startswith("whsec_")
    assert p.call("GET", "/alerts/webhook")["secret"] is None
    bad = p.api.put("/alerts/webhook", json={"url": "ftp://example.com/x"})
    assert bad.status_code == 400 and "http" in bad.text

    team = p.call("POST", "/teams", json={"name": "Alerted"})["id"]
    me = p.call("GET", "/members", params={"per_page": 100})["items"][0]["email"]
    r = p.api.post(f"/teams/{team}/members", json={"email": me})
    assert r.status_code == 204, r.text
    expected_to = recipients(p, team)
    assert me in expected_to
    plan = p.call("POST", "/plans", json={"name": "Alert quota", "monthly_tokens": QUOTA,
                                         "requests_per_minute": 100_000, "tokens_per_minute": 100_000_000})["id"]
    sub = p.call("POST", "/subscriptions", json={"team_id": team, "model_id": MODEL, "plan_id": plan})
    assert sub["state"] == "active", sub
    key = p.call("POST", f"/subscriptions/{sub['id']}/keys", json={"name": "alerts"})["secret"]
    client = p.client(key)

    def used() -> int:
        quotas = [q for q in p.call("GET", "/usage/quotas") if q["subscription_id"] == sub["id"]]
        return quotas[0]["used_tokens"]

    # Traffic until the quota is used up; each threshold's alert fires as it is crossed. Completions use 20 tokens
    # each; once the gateway's reservation no longer fits, a chat call (its template makes it larger than its
    # reservation) takes the subscription past 100 %.
    deadline = time.monotonic() + 90
    while used() < QUOTA and time.monotonic() < deadline:
        try:
            client.completions.create(model=MODEL, prompt="count to ten", max_tokens=16)
        except openai.RateLimitError:
            try:
                client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                               max_tokens=1)
            except openai.RateLimitError:
                pass
        time.sleep(0.6)  # the records land in batches: the quota view catches up
    assert used() >= QUOTA, f"only {used()} of {QUOTA} tokens used"

    alerts = wait_for("three quota alerts", lambda: len(quota_alerts(p, sub["id"])) == 3 and quota_alerts(p, sub["id"]))
    assert sorted(a["threshold"] for a in alerts) == [50, 90, 100]
    for a in alerts:
        assert a["team_name"] == "Alerted" and a["quota_tokens"] == QUOTA
        assert f"used {a['threshold']} % of its {QUOTA} monthly tokens" in a["message"], a["message"]
        assert len(a["period"]) == 7  # the month, YYYY-MM

    # Email: one message per threshold, to the team's members and the tenant's admins.
    def subjects() -> list[tuple[set[str], str, str]]:
        with box.lock:
            out = []
            for rcpts, raw in box.messages:
                msg = message_from_bytes(raw)
                to = {addr for _, addr in getaddresses(msg.get_all("To", []))}
                assert to == set(rcpts)
                out.append((to, msg["Subject"], msg["From"]))
            return out
    mails = wait_for("three emails", lambda: len([m for m in subjects() if "Alerted" in m[1]]) >= 3 and subjects())
    mine = [m for m in mails if "Team Alerted used" in m[1]]
    assert len(mine) == 3, mine
    assert sorted(int(s.split(" used ")[1].split(" %")[0]) for _, s, _ in mine) == [50, 90, 100]
    for to, _, sender in mine:
        assert to == expected_to
        assert "alerts@tollgate.test" in sender
    # Each came over STARTTLS after a good login (aiosmtpd takes no mail before both), and no login failed.
    with box.lock:
        assert box.logins and all(ok for _, ok in box.logins), box.logins

    # Webhook: one accepted delivery per threshold, each signed with the secret; the first (refused with a 500)
    # was tried again.
    def accepted() -> list[dict]:
        with Receiver.lock:
            return [json.loads(b) for s, h, b in Receiver.received
                    if s == 204 and verify(secret, h["tollgate-signature"], b) and json.loads(b)["kind"] == "quota"]
    wait_for("three accepted webhooks", lambda: len([x for x in accepted() if x["subscription_id"] == sub["id"]]) == 3)
    with Receiver.lock:
        first_status, first_headers, first_body = Receiver.received[0]
        statuses = [s for s, _, _ in Receiver.received]
        for _, h, b in Receiver.received:
            assert verify(secret, h["tollgate-signature"], b), "every delivery is signed"
            assert not verify("whsec_wrong", h["tollgate-signature"], b)
    assert first_status == 500
    retried = json.loads(first_body)["delivery_id"]
    assert sum(1 for x in accepted() if x["delivery_id"] == retried) == 1, "the refused delivery was retried once"
    assert statuses.count(500) == 1
    hooks = [x for x in accepted() if x["subscription_id"] == sub["id"]]
    assert sorted(x["threshold"] for x in hooks) == [50, 90, 100]
    assert all(x["type"] == "usage.alert" and x["kind"] == "quota" for x in hooks)

    # The API lists each alert's deliveries as delivered, the webhook after two attempts.
    def all_delivered():
        current = quota_alerts(p, sub["id"])
        return all(d["status"] == "delivered" for a in current for d in a["deliveries"]) and current
    listed = wait_for("deliveries marked delivered", all_delivered)
    channels = sorted(d["channel"] for a in listed for d in a["deliveries"])
    assert channels == ["email"] * 3 + ["webhook"] * 3
    assert sorted(d["attempts"] for a in listed for d in a["deliveries"] if d["channel"] == "webhook") == [1, 1, 2]

    # More traffic (refused now, the quota is spent): nothing is sent again.
    for _ in range(2):
        try:
            client.completions.create(model=MODEL, prompt="again", max_tokens=4)
        except openai.RateLimitError:
            pass
    time.sleep(3)  # three evaluation passes
    assert len(quota_alerts(p, sub["id"])) == 3
    assert len([m for m in subjects() if "Team Alerted used" in m[1]]) == 3
    assert len([x for x in accepted() if x["subscription_id"] == sub["id"]]) == 3

    # Rotation: a new secret, shown once, signs what follows; the old one is gone.
    rotated = p.call("POST", "/alerts/webhook/rotate")
    assert rotated["secret"] and rotated["secret"] != secret
    assert p.call("GET", "/alerts/webhook")["secret"] is None


def test_repeated_rate_limit_refusals_raise_one_alert(platform: Platform, smtp):
    box, _, _ = smtp
    p = platform
    team = p.call("POST", "/teams", json={"name": "Throttled"})["id"]
    plan = p.call("POST", "/plans", json={"name": "Alert tight", "requests_per_minute": 1})["id"]
    sub = p.call("POST", "/subscriptions", json={"team_id": team, "model_id": MODEL, "plan_id": plan})
    key = p.call("POST", f"/subscriptions/{sub['id']}/keys", json={"name": "tight"})["secret"]
    client = p.client(key)
    refused = 0
    for _ in range(RATE_LIMITED_COUNT + 3):
        try:
            client.completions.create(model=MODEL, prompt="hi", max_tokens=2)
        except openai.RateLimitError:
            refused += 1
    assert refused >= RATE_LIMITED_COUNT + 1

    def limited() -> list[dict]:
        items = p.call("GET", "/usage/alerts", params={"limit": 200})["items"]
        return [a for a in items if a["subscription_id"] == sub["id"]]
    alerts = wait_for("a rate-limit alert", limited)
    time.sleep(2.5)  # more passes: still one
    alerts = limited()
    assert len(alerts) == 1, alerts
    a = alerts[0]
    assert a["kind"] == "rate_limited" and a["threshold"] == 0
    assert a["refusals"] >= RATE_LIMITED_COUNT
    assert "refused by a rate limit" in a["message"] and "Throttled" in a["message"]
    assert len(a["period"]) == len("2026-12-07T11")
    # Emailed (to the tenant's admins: the team has no members of its own).
    wait_for("the rate-limit email", lambda: [m for _, m in box.messages if b"Throttled was refused" in m])

    # Keyset paging: pages of one, newest first, no alert twice.
    seen, after = [], None
    while True:
        page = p.call("GET", "/usage/alerts", params={"limit": 1, **({"after": after} if after else {})})
        seen.extend(a["id"] for a in page["items"])
        after = page["next"]
        if not after:
            break
    assert len(seen) == len(set(seen)) >= 4
    assert p.api.get("/usage/alerts", params={"after": "garbage"}).status_code == 400
