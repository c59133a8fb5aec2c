"""Every operation of the management API answers what its OpenAPI document says: a live server is driven through
each documented operation, and each answer's body is validated against the schema the document gives for that
status, and must name no property the schema does not (so an answer built outside the derived types, or a type
left out of the document, fails here). The run ends by checking that every documented
operation was exercised."""

from __future__ import annotations

import re
import time

import httpx
import jsonschema
import pytest

from tollgate_platform import Platform, start_engines, start_platform

MODEL = "granite-3.1-2b-base"


class Undocumented:
    """Finds properties of an answer that its schema does not name, wherever they are nested: through `$ref`,
    `allOf` (flattened types), `oneOf` (the branch that validates), arrays and maps."""

    def __init__(self, components: dict) -> None:
        self.components = components

    def resolve(self, schema: dict) -> dict:
        while "$ref" in schema:
            schema = self.components["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def valid(self, instance, schema: dict) -> bool:
        return jsonschema.Draft202012Validator({**schema, "components": self.components}).is_valid(instance)

    def properties(self, schema: dict) -> dict:
        schema = self.resolve(schema)
        props = dict(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            props.update(self.properties(part))
        return props

    def find(self, instance, schema: dict, path: str = "") -> list[str]:
        schema = self.resolve(schema)
        for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
            if self.valid(instance, branch):
                return self.find(instance, branch, path)
        found: list[str] = []
        if isinstance(instance, dict):
            props = self.properties(schema)
            extra = self.resolve(schema).get("additionalProperties")
            for key, value in instance.items():
                if key in props:
                    found += self.find(value, props[key], f"{path}.{key}")
                elif isinstance(extra, dict):
                    found += self.find(value, extra, f"{path}.{key}")
                else:
                    found.append(f"{path}.{key}")
        elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
            for i, value in enumerate(instance):
                found += self.find(value, schema["items"], f"{path}[{i}]")
        return found


class Checker:
    def __init__(self, p: Platform) -> None:
        self.p = p
        self.doc = httpx.get(f"{p.url}/api/v1/openapi.json", timeout=30).json()
        self.components = self.doc["components"]
        self.undocumented = Undocumented(self.components)
        self.exercised: set[tuple[str, str]] = set()
        # Documented path templates as regular expressions, to find the operation a concrete path belongs to.
        self.templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path) for path in self.doc["paths"]
        ]

    def template(self, path: str) -> str:
        matches = [t for rx, t in self.templates if rx.match(path)]
        assert matches, f"{path} is not documented"
        # The most literal template wins (/plans/{id}/archive over /plans/{id}).
        return max(matches, key=lambda t: len(re.sub(r"\{[^}]+\}", "", t)))

    def call(self, method: str, path: str, expect: int | None = None, **kwargs) -> httpx.Response:
        r = self.p.api.request(method, path, **kwargs)
        full = f"/api/v1{path.split('?')[0]}"
        template = self.template(full)
        op = self.doc["paths"][template].get(method.lower())
        assert op, f"{method} {template} is not documented"
        if expect is not None:
            assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        response = op["responses"].get(str(r.status_code))
        assert response, f"{method} {template} answered {r.status_code}, which is not documented: {r.text}"
        content = response.get("content", {}).get("application/json")
        if "text/csv" in response.get("content", {}):
            assert r.headers["content-type"].startswith("text/csv"), f"{method} {template}: {r.headers}"
        elif content is None:
            assert not r.content, f"{method} {template} {r.status_code} documents no body but sent {r.text}"
        else:
            schema = {**content["schema"], "components": self.components}
            try:
                jsonschema.Draft202012Validator(schema).validate(r.json())
            except jsonschema.ValidationError as e:
                pytest.fail(f"{method} {template} {r.status_code}: the body does not match its schema: "
                            f"{e.message} at {list(e.absolute_path)}\n{r.text[:2000]}")
            extra = self.undocumented.find(r.json(), content["schema"])
            assert not extra, f"{method} {template} {r.status_code} answers properties its schema does not name: {extra}"
        self.exercised.add((method.lower(), template))
        return r


@pytest.fixture(scope="module")
def platform():
    sims = start_engines({MODEL: ("ibm-granite/granite-3.1-2b-base", 1, ["--sim-zero-latency"])})
    # The fleet's simulator driver runs the deployment this test makes (engines load at once, passes every 200 ms).
    p = start_platform(sims=sims, extra_env={"TOLLGATE_FLEET_SIM_ARGS": "--sim-zero-latency",
                                             "TOLLGATE_FLEET_TICK_MS": "200", "TOLLGATE_ALERTS_INTERVAL_S": "1"})
    yield p
    p.stop()
    for replicas in sims.values():
        for s in replicas:
            s.stop()


def test_every_operation_answers_as_documented(platform: Platform):
    c = Checker(platform)
    me = c.call("GET", "/me", 200).json()
    team = c.call("GET", "/teams", 200).json()["items"][0]
    c.call("GET", f"/teams/{team['id']}", 200)
    c.call("GET", "/models?task=chat&sort=newest", 200)
    c.call("GET", f"/models/{MODEL}", 200)
    c.call("GET", "/models/no-such-model", 404)

    model = {"id": "schema-test-model", "display_name": "Schema test", "family": "Test", "provider": "Tollgate",
             "context_length": 4096, "task": "chat", "status": "available", "visibility": "open",
             "tags": "test, schema", "input_price": "0.10"}
    c.call("POST", "/models", 201, json=model)
    c.call("PUT", "/models/schema-test-model", 200, json={**model, "display_name": "Schema test 2"})

    plan = c.call("POST", "/plans", 201, json={"name": "Schema", "requests_per_minute": 1000,
                                               "requires_approval": True}).json()
    other = c.call("POST", "/plans", 201, json={"name": "Schema other", "tokens_per_minute": 100000}).json()
    c.call("PUT", f"/plans/{plan['id']}", 200, json={"name": "Schema", "requests_per_minute": 2000,
                                                     "requires_approval": True})
    c.call("PUT", f"/plans/{plan['id']}/models/{MODEL}", 200, json={"tokens_per_minute": 50000})
    c.call("POST", f"/plans/{other['id']}/archive", 200, json={"archived": True})
    c.call("POST", f"/plans/{other['id']}/archive", 200, json={"archived": False})
    c.call("GET", "/plans", 200)
    c.call("POST", "/plans", 400, json={"name": "Bad", "requests_per_minute": -1})

    sub = c.call("POST", "/subscriptions", 201, json={"team_id": team["id"], "model_id": MODEL,
                                                      "plan_id": plan["id"]}).json()
    assert sub["state"] == "pending_tenant"
    c.call("GET", "/approvals", 200)
    c.call("POST", f"/subscriptions/{sub['id']}/decision", 200, json={"change": "approve"})
    c.call("POST", f"/subscriptions/{sub['id']}/plan", 200, json={"plan_id": other["id"]})
    created = c.call("POST", f"/subscriptions/{sub['id']}/keys", 201, json={"name": "schema"}).json()
    rotated = c.call("POST", f"/keys/{created['key']['id']}/rotate", 201, json={"grace_hours": 1}).json()
    c.call("GET", "/subscriptions?state=active", 200)
    c.call("GET", f"/subscriptions/{sub['id']}", 200)

    # One gateway request, so the usage list has a record to validate.
    r = httpx.post(f"{platform.base_url}/completions", json={"model": MODEL, "prompt": "Hi", "max_tokens": 2},
                   headers={"Authorization": f"Bearer {rotated['secret']}"}, timeout=30)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 10
    while not c.call("GET", f"/usage?subscription_id={sub['id']}", 200).json()["items"]:
        assert time.monotonic() < deadline, "the usage record was never written"
        time.sleep(0.2)
    c.call("DELETE", f"/keys/{rotated['key']['id']}", 200)
    # The same request, summed from the rollups: by model with its cost, and per minute.
    summary = c.call("GET", "/usage/summary?range=day&group_by=model", 200).json()
    mine = [g for g in summary["items"] if g["value"] == MODEL]
    assert mine and mine[0]["figures"]["requests"] >= 1 and mine[0]["figures"]["cost_micros"] is not None
    series = c.call("GET", f"/usage/series?range=hour&subscription_id={sub['id']}&limit=1", 200).json()
    assert series["items"][0]["figures"]["requests"] == 1 and series["items"][0]["bucket"] is not None
    c.call("GET", "/usage/summary?range=fortnight", 400)
    quota = next(q for q in c.call("GET", "/usage/quotas", 200).json() if q["subscription_id"] == sub["id"])
    assert quota["used_tokens"] > 0
    # Alerts: the tenant's webhook (its secret shown once), then a quota of one token, which the request above
    # has used up: its alerts are listed with their (failing) webhook deliveries.
    c.call("GET", "/alerts/webhook", 404)
    # Internal addresses are refused (the server posts to public ones only); a name is resolved when sending.
    c.call("PUT", "/alerts/webhook", 400, json={"url": "http://169.254.169.254/latest/meta-data/"})
    hook = c.call("PUT", "/alerts/webhook", 200, json={"url": "https://hooks.example.com/tollgate"}).json()
    assert hook["secret"].startswith("whsec_")
    assert c.call("GET", "/alerts/webhook", 200).json()["secret"] is None
    c.call("PUT", "/alerts/webhook", 400, json={"url": "ftp://example.test/hook"})
    c.call("PUT", f"/plans/{other['id']}/models/{MODEL}", 200, json={"monthly_tokens": 1})
    deadline = time.monotonic() + 20
    while len(c.call("GET", "/usage/alerts?limit=5", 200).json()["items"]) < 3:
        assert time.monotonic() < deadline, "the quota alerts never fired"
        time.sleep(0.3)
    alerts = c.call("GET", "/usage/alerts?limit=2", 200).json()
    assert alerts["next"] and all(a["deliveries"][0]["channel"] == "webhook" for a in alerts["items"])
    c.call("GET", f"/usage/alerts?limit=2&after={alerts['next']}", 200)
    c.call("GET", "/usage/alerts?after=nonsense", 400)
    assert c.call("POST", "/alerts/webhook/rotate", 200).json()["secret"] != hook["secret"]
    c.call("DELETE", "/alerts/webhook", 204)
    c.call("POST", "/alerts/webhook/rotate", 404)
    csv_rows = c.call("GET", f"/usage/export.csv?range=day&subscription_id={sub['id']}", 200).text.splitlines()
    assert csv_rows[0].startswith("at_ms,request_id,") and len(csv_rows) == 2, csv_rows
    c.call("GET", "/platform/viewers", 200)
    c.call("PUT", f"/platform/viewers/{me['email']}", 200)
    c.call("DELETE", f"/platform/viewers/{me['email']}", 200)
    c.call("PUT", "/platform/viewers/nobody@example.test", 404)

    c.call("GET", "/tenants", 200)
    c.call("POST", "/tenants", 201, json={"name": "Schema tenant"})
    new_team = c.call("POST", "/teams", 201, json={"name": "Schema team", "description": "for the schema test"}).json()
    c.call("POST", f"/teams/{new_team['id']}/members", 204, json={"email": me["email"]})
    c.call("DELETE", f"/teams/{new_team['id']}/members/{me['user_id']}", 204)
    c.call("DELETE", f"/teams/{new_team['id']}", 204)
    c.call("GET", "/members", 200)
    c.call("PUT", f"/members/{me['user_id']}", 204, json={"role": "admin"})
    # The tenant's only admin cannot leave it: a documented refusal, in the error shape.
    c.call("DELETE", f"/members/{me['user_id']}", 409)
    c.call("POST", "/invitations", 201, json={"role": "developer", "valid_hours": 24})
    c.call("GET", "/invitations", 200)
    c.call("GET", "/audit?action=subscription.approved", 200)

    # The fleet: a deployment goes up, is scaled, shows its events, and goes; bad input is a 400.
    c.call("GET", "/fleet/nodes", 200)
    dep = c.call("POST", "/deployments", 201, json={"model_id": "llama-3.1-8b-instruct", "max_replicas": 2}).json()
    c.call("POST", "/deployments", 400, json={"model_id": "llama-3.1-8b-instruct", "gpus_per_replica": 64})
    deadline = time.monotonic() + 20
    while c.call("GET", f"/deployments/{dep['id']}", 200).json()["ready_replicas"] < 1:
        assert time.monotonic() < deadline, "the deployment never became ready"
        time.sleep(0.2)
    c.call("PATCH", f"/deployments/{dep['id']}", 200, json={"min_replicas": 2})
    c.call("GET", "/deployments", 200)
    c.call("GET", f"/deployments/{dep['id']}/events?limit=5", 200)
    c.call("DELETE", f"/deployments/{dep['id']}", 202)
    c.call("GET", "/deployments/dep_none", 404)

    documented = {(m, path) for path, item in c.doc["paths"].items() for m in item}
    missing = sorted(documented - c.exercised)
    assert not missing, f"documented operations never exercised: {missing}"
