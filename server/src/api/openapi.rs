//! The OpenAPI 3.1 document of `/api/v1`, served at `/api/v1/openapi.json`. `ENDPOINTS` is the list the router
//! must match (an integration test calls each one), and the schemas mirror the JSON the handlers exchange.

use serde_json::{json, Map, Value};

pub struct Endpoint {
    pub method: &'static str,
    /// Relative to /api/v1, with `{param}` placeholders.
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    /// Request body schema name.
    pub body: Option<&'static str>,
    /// Success status and response schema name (None: no body).
    pub ok: (u16, Option<&'static str>),
    /// Query parameters: (name, description).
    pub query: &'static [(&'static str, &'static str)],
}

const PAGE: &[(&str, &str)] = &[
    ("page", "1-based page number"),
    ("per_page", "items per page, 1-100 (default 20)"),
];
const SEARCH: &[(&str, &str)] = &[
    ("search", "case-insensitive text search"),
    ("page", "1-based page number"),
    ("per_page", "items per page, 1-100 (default 20)"),
];

macro_rules! ep {
    ($m:literal $p:literal, $tag:literal, $summary:literal, $body:expr, $status:literal $resp:expr, $query:expr) => {
        Endpoint {
            method: $m,
            path: $p,
            tag: $tag,
            summary: $summary,
            body: $body,
            ok: ($status, $resp),
            query: $query,
        }
    };
}

pub const ENDPOINTS: &[Endpoint] = &[
    ep!("get" "/me", "identity", "The caller, their tenants and roles", None, 200 Some("Me"), &[]),
    ep!("get" "/models", "catalog", "Search, filter, sort and page the catalog", None, 200 Some("ModelList"), &[
        ("search", "words matched against id, name, family, provider, description and tags"),
        ("task", "chat | completion | embeddings"), ("family", "model family"), ("tag", "one tag"),
        ("status", "preview | available | deprecated | retired | all (default: all but retired)"),
        ("sort", "name | newest | price | context | size"), ("page", "1-based page number"), ("per_page", "items per page")]),
    ep!("post" "/models", "catalog", "Add a model (platform admins)", Some("ModelInput"), 201 Some("Model"), &[]),
    ep!("get" "/models/{id}", "catalog", "A model with the plans offering it", None, 200 Some("ModelDetail"), &[]),
    ep!("put" "/models/{id}", "catalog", "Replace a model's fields (platform admins)", Some("ModelInput"), 200 Some("Model"), &[]),
    ep!("get" "/plans", "catalog", "Every plan (archived ones for platform admins only)", None, 200 Some("PlanList"), &[("search", "name or description contains")]),
    ep!("post" "/plans", "catalog", "Create a plan (platform admins)", Some("PlanInput"), 201 Some("Plan"), &[]),
    ep!("put" "/plans/{id}", "catalog", "Replace a plan's settings (platform admins)", Some("PlanInput"), 200 Some("Plan"), &[]),
    ep!("post" "/plans/{id}/archive", "catalog", "Archive or restore a plan (platform admins)", Some("Archive"), 200 Some("Plan"), &[]),
    ep!("put" "/plans/{id}/models/{model_id}", "catalog", "Set one model's limits under a plan (platform admins)", Some("OverrideInput"), 200 Some("Plan"), &[]),
    ep!("get" "/subscriptions", "subscriptions", "The tenant's subscriptions", None, 200 Some("SubscriptionPage"), &[
        ("search", "model or team name"), ("state", "a state, or pending for both pending stages"), ("team_id", "one team"),
        ("page", "1-based page number"), ("per_page", "items per page")]),
    ep!("post" "/subscriptions", "subscriptions", "Subscribe a team to a model under a plan", Some("NewSubscription"), 201 Some("Subscription"), &[]),
    ep!("get" "/subscriptions/{id}", "subscriptions", "A subscription with its keys (prefixes only)", None, 200 Some("SubscriptionWithKeys"), &[]),
    ep!("post" "/subscriptions/{id}/decision", "subscriptions", "Approve, reject, suspend, resume or cancel", Some("Decision"), 200 Some("Subscription"), &[]),
    ep!("post" "/subscriptions/{id}/plan", "subscriptions", "Move a subscription to another plan (tenant admins)", Some("PlanChange"), 200 Some("Subscription"), &[]),
    ep!("post" "/subscriptions/{id}/keys", "keys", "Create an API key; the secret is in this response only", Some("NewKey"), 201 Some("KeyCreated"), &[]),
    ep!("get" "/approvals", "subscriptions", "Requests waiting for the caller's decision", None, 200 Some("SubscriptionPage"), SEARCH),
    ep!("delete" "/keys/{id}", "keys", "Revoke an API key", None, 200 Some("Key"), &[]),
    ep!("post" "/keys/{id}/rotate", "keys", "Replace a key; the old one stays valid for the grace period", Some("Rotation"), 201 Some("KeyCreated"), &[]),
    ep!("get" "/usage", "usage", "Usage records, one per gateway request, newest first", None, 200 Some("UsagePage"), &[
        ("subscription_id", "one subscription"), ("key_id", "one API key (its id, the part after tg-)"), ("model", "one model id"),
        ("team_id", "one team"), ("from", "YYYY-MM-DD or epoch milliseconds"), ("until", "YYYY-MM-DD (inclusive) or epoch milliseconds"),
        ("all_tenants", "platform admins: every tenant"), ("page", "1-based page number"), ("per_page", "items per page")]),
    ep!("get" "/tenants", "tenancy", "All tenants (platform admins)", None, 200 Some("TenantPage"), SEARCH),
    ep!("post" "/tenants", "tenancy", "Create a tenant (platform admins)", Some("NewTenant"), 201 Some("Tenant"), &[]),
    ep!("get" "/teams", "tenancy", "The tenant's teams", None, 200 Some("TeamPage"), SEARCH),
    ep!("post" "/teams", "tenancy", "Create a team (tenant admins)", Some("NewTeam"), 201 Some("Team"), &[]),
    ep!("get" "/teams/{id}", "tenancy", "A team with its members", None, 200 Some("TeamWithMembers"), &[]),
    ep!("delete" "/teams/{id}", "tenancy", "Delete a team (tenant admins)", None, 204 None, &[]),
    ep!("post" "/teams/{id}/members", "tenancy", "Add a tenant member to a team", Some("TeamMemberAdd"), 204 None, &[]),
    ep!("delete" "/teams/{id}/members/{user_id}", "tenancy", "Remove someone from a team", None, 204 None, &[]),
    ep!("get" "/members", "tenancy", "The tenant's members", None, 200 Some("MemberPage"), SEARCH),
    ep!("put" "/members/{user_id}", "tenancy", "Change a member's role (tenant admins)", Some("RoleChange"), 204 None, &[]),
    ep!("delete" "/members/{user_id}", "tenancy", "Remove a member from the tenant (tenant admins)", None, 204 None, &[]),
    ep!("get" "/invitations", "tenancy", "The tenant's invitations", None, 200 Some("InvitationPage"), PAGE),
    ep!("post" "/invitations", "tenancy", "Invite someone; the link is in this response only", Some("NewInvitation"), 201 Some("InvitationCreated"), &[]),
    ep!("get" "/audit", "tenancy", "The audit log (tenant admins: their tenant; platform admins: all)", None, 200 Some("AuditPage"), &[
        ("action", "an action name such as subscription.approved"), ("actor", "actor email contains"),
        ("from", "YYYY-MM-DD"), ("until", "YYYY-MM-DD, inclusive"), ("tenant_id", "platform admins: one tenant"),
        ("page", "1-based page number"), ("per_page", "items per page")]),
];

/// A limit in an input: a positive integer, or null (or absent) for `absent`. Strings of digits, what the API took
/// before, are still accepted for one release.
fn limit(absent: &str) -> Value {
    json!({ "type": ["integer", "null"], "minimum": 1, "description": format!("absent or null: {absent}") })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn operation(e: &Endpoint) -> Value {
    let mut params: Vec<Value> = e
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    params.extend(e.query.iter().map(|(name, description)| {
        let schema = if matches!(*name, "page" | "per_page") { json!({ "type": "integer", "minimum": 1 }) } else { json!({ "type": "string" }) };
        json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
    }));
    params.push(json!({ "name": "X-Tollgate-Tenant", "in": "header", "required": false, "description": "tenant id to work in (default: the caller's first tenant)", "schema": { "type": "string" } }));
    let mut responses = Map::new();
    let ok = match e.ok.1 {
        Some(s) => {
            json!({ "description": "success", "content": { "application/json": { "schema": schema_ref(s) } } })
        }
        None => json!({ "description": "done, no content" }),
    };
    responses.insert(e.ok.0.to_string(), ok);
    for (status, what) in [
        ("400", "invalid input"),
        ("401", "not signed in, or a bad token"),
        ("403", "not allowed, or a read-only token"),
        ("404", "not found, or not in your tenant"),
        ("409", "conflicts with the current state"),
    ] {
        responses.insert(status.into(), json!({ "description": what, "content": { "application/json": { "schema": schema_ref("Error") } } }));
    }
    let mut op = json!({
        "tags": [e.tag],
        "summary": e.summary,
        "operationId": format!("{}_{}", e.method, e.path.trim_start_matches('/').replace(['/', '{', '}'], "_").trim_end_matches('_')),
        "parameters": params,
        "responses": responses,
    });
    if let Some(body) = e.body {
        op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema_ref(body) } } });
    }
    op
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

fn page_of(item: &str) -> Value {
    obj(
        &["items", "total", "page", "per_page"],
        json!({
            "items": { "type": "array", "items": schema_ref(item) },
            "total": { "type": "integer" }, "page": { "type": "integer" }, "per_page": { "type": "integer" }
        }),
    )
}

fn schemas() -> Value {
    let s = json!({ "type": "string" });
    let ns = json!({ "type": ["string", "null"] });
    let int = json!({ "type": "integer" });
    let nint = json!({ "type": ["integer", "null"] });
    let millis = json!({ "type": "integer", "description": "milliseconds since the Unix epoch" });
    let nmillis =
        json!({ "type": ["integer", "null"], "description": "milliseconds since the Unix epoch" });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let limits = obj(
        &[],
        json!({ "requests_per_minute": nint, "tokens_per_minute": nint, "max_concurrent": nint, "monthly_tokens": nint }),
    );
    let state = json!({ "type": "string", "enum": ["pending_tenant", "pending_platform", "active", "suspended", "rejected", "cancelled"] });
    let key_state = json!({ "type": "object", "required": ["state"], "properties": {
        "state": { "type": "string", "enum": ["active", "rotating", "expired", "revoked"] }, "until": millis } });
    let model = obj(
        &["id", "display_name", "task", "status", "visibility"],
        json!({
        "id": s, "display_name": s, "family": s, "provider": s, "description": s,
        "parameters_millions": int, "context_length": int,
        "task": { "type": "string", "enum": ["chat", "completion", "embeddings"] }, "license": s, "tags": strings, "versions": strings,
        "input_price": { "type": "integer", "description": "micro-units per million input tokens" },
        "output_price": { "type": "integer", "description": "micro-units per million output tokens" },
        "status": { "type": "string", "enum": ["preview", "available", "deprecated", "retired"] },
        "sunset_at": nmillis, "replacement_id": ns, "visibility": { "type": "string", "enum": ["open", "restricted"] },
        "upstream_name": s, "created_at": millis, "updated_at": millis }),
    );
    let plan = obj(
        &[
            "id",
            "name",
            "limits",
            "all_models",
            "requires_approval",
            "archived",
        ],
        json!({
        "id": s, "name": s, "description": s, "limits": schema_ref("Limits"), "all_models": { "type": "boolean" },
        "models": { "type": "array", "items": obj(&["model_id", "overrides"], json!({ "model_id": s, "overrides": schema_ref("Limits") })) },
        "requires_approval": { "type": "boolean" }, "archived": { "type": "boolean" } }),
    );
    let subscription_props = json!({
        "id": s, "tenant_id": s, "team_id": s, "team_name": s, "model_id": s, "model_name": s,
        "model_notice": { "type": ["string", "null"], "description": "deprecation or retirement notice" },
        "plan_id": s, "plan_name": s, "state": state, "note": s, "reason": s, "requested_by": s, "decided_by": ns,
        "created_at": millis, "updated_at": millis, "active_keys": int });
    let mut with_keys = subscription_props.clone();
    with_keys["keys"] = json!({ "type": "array", "items": schema_ref("Key") });
    let key = obj(
        &["id", "name", "prefix", "state"],
        json!({
        "id": s, "subscription_id": s, "name": s, "prefix": { "type": "string", "description": "tg-<id>: recognisable, not secret" },
        "created_by": s, "created_at": millis, "expires_at": nmillis, "last_used_at": nmillis, "state": key_state }),
    );
    let membership = obj(
        &["tenant_id", "slug", "name"],
        json!({ "tenant_id": s, "slug": s, "name": s,
        "role": { "type": ["string", "null"], "enum": ["Admin", "Developer", "Viewer", null] } }),
    );
    let tenant = obj(
        &["id", "slug", "name"],
        json!({ "id": s, "slug": s, "name": s, "members": int, "teams": int, "created_at": millis }),
    );
    let team_props =
        json!({ "id": s, "name": s, "description": s, "members": int, "created_at": millis });
    let mut team_with_members = team_props.clone();
    team_with_members["members_list"] = json!({ "type": "array", "items": obj(&["user_id", "email"], json!({ "user_id": s, "email": s, "name": s, "added_at": millis })) });
    let invitation = obj(
        &["id", "role", "state"],
        json!({ "id": s, "email": ns, "role": { "type": "string", "enum": ["Admin", "Developer", "Viewer"] },
        "team_name": ns, "invited_by": s, "created_at": millis, "expires_at": millis, "state": s }),
    );
    json!({
        "Error": obj(&["error"], json!({ "error": obj(&["type", "message"], json!({ "type": s, "message": s })) })),
        "Limits": limits,
        "Me": obj(&["user_id", "email", "name", "platform_admin", "tenants"], json!({ "user_id": s, "email": s, "name": s,
            "platform_admin": { "type": "boolean" }, "tenant": { "oneOf": [schema_ref("Membership"), { "type": "null" }] },
            "tenants": { "type": "array", "items": schema_ref("Membership") } })),
        "Membership": membership,
        "Model": model,
        "ModelList": obj(&["items", "total", "page", "per_page", "facets"], json!({
            "items": { "type": "array", "items": schema_ref("Model") }, "total": int, "page": int, "per_page": int,
            "facets": obj(&["families", "tags"], json!({ "families": strings, "tags": strings })) })),
        "ModelDetail": obj(&["model", "description_html", "plans", "gateway_url"], json!({ "model": schema_ref("Model"),
            "description_html": { "type": "string", "description": "the description rendered to safe HTML" },
            "plans": { "type": "array", "items": schema_ref("Plan") }, "gateway_url": s })),
        "ModelInput": obj(&["id", "display_name", "family", "provider", "context_length", "task", "status", "visibility"], json!({
            "id": s, "display_name": s, "family": s, "provider": s, "description": s, "parameters_millions": int,
            "context_length": int, "task": s, "license": s,
            "tags": { "type": "string", "description": "comma-separated" }, "versions": { "type": "string", "description": "comma-separated" },
            "input_price": { "type": "string", "description": "per million tokens, e.g. 0.20" }, "output_price": { "type": "string" },
            "status": s, "sunset_date": { "type": "string", "description": "YYYY-MM-DD; required when deprecated" },
            "replacement_id": s, "visibility": s, "upstream_name": s })),
        "Plan": plan,
        "PlanList": { "type": "array", "items": schema_ref("Plan") },
        "PlanInput": obj(&["name"], json!({ "name": s, "description": s,
            "requests_per_minute": limit("unlimited"), "tokens_per_minute": limit("unlimited"),
            "max_concurrent": limit("unlimited"), "monthly_tokens": limit("unlimited"),
            "models": { "type": "string", "description": "comma-separated model ids; empty covers every model" },
            "requires_approval": { "type": "boolean" } })),
        "OverrideInput": obj(&[], json!({ "requests_per_minute": limit("the plan's value"),
            "tokens_per_minute": limit("the plan's value"), "max_concurrent": limit("the plan's value"),
            "monthly_tokens": limit("the plan's value") })),
        "Archive": obj(&["archived"], json!({ "archived": { "type": "boolean" } })),
        "Subscription": { "type": "object", "required": ["id", "state", "model_id", "team_id", "plan_id"], "properties": subscription_props },
        "SubscriptionWithKeys": { "type": "object", "required": ["id", "state", "keys"], "properties": with_keys },
        "SubscriptionPage": page_of("Subscription"),
        "NewSubscription": obj(&["team_id", "model_id", "plan_id"], json!({ "team_id": s, "model_id": s, "plan_id": s, "note": s })),
        "Decision": obj(&["change"], json!({ "change": { "type": "string", "enum": ["approve", "reject", "suspend", "resume", "cancel"] },
            "reason": { "type": "string", "description": "required to reject or suspend" } })),
        "PlanChange": obj(&["plan_id"], json!({ "plan_id": s })),
        "Key": key,
        "NewKey": obj(&["name"], json!({ "name": s, "expires_in_days": { "type": ["integer", "null"], "minimum": 0, "maximum": 366 } })),
        "KeyCreated": obj(&["key", "secret"], json!({ "key": schema_ref("Key"), "secret": { "type": "string", "description": "the full key, shown once" } })),
        "Rotation": obj(&[], json!({ "grace_hours": { "type": "integer", "minimum": 0, "maximum": 720 } })),
        "Tenant": tenant,
        "TenantPage": page_of("Tenant"),
        "NewTenant": obj(&["name"], json!({ "name": s, "slug": s })),
        "Team": { "type": "object", "required": ["id", "name"], "properties": team_props },
        "TeamPage": page_of("Team"),
        "TeamWithMembers": { "type": "object", "required": ["id", "name", "members_list"], "properties": team_with_members },
        "NewTeam": obj(&["name"], json!({ "name": s, "description": s })),
        "TeamMemberAdd": obj(&["email"], json!({ "email": s })),
        "Member": obj(&["user_id", "email", "role"], json!({ "user_id": s, "email": s, "name": s,
            "role": { "type": "string", "enum": ["Admin", "Developer", "Viewer"] }, "joined_at": millis })),
        "MemberPage": page_of("Member"),
        "RoleChange": obj(&["role"], json!({ "role": { "type": "string", "enum": ["admin", "developer", "viewer"] } })),
        "Invitation": invitation,
        "InvitationPage": page_of("Invitation"),
        "NewInvitation": obj(&["role"], json!({ "email": ns, "role": s, "team_id": ns, "valid_hours": { "type": ["integer", "null"], "minimum": 1, "maximum": 336 } })),
        "InvitationCreated": obj(&["invitation", "link"], json!({ "invitation": schema_ref("Invitation"), "link": s })),
        "AuditEvent": obj(&["id", "at", "action"], json!({ "id": s, "at": millis, "tenant_id": ns, "actor_email": ns, "action": s, "target": s, "detail": s, "ip": ns })),
        "AuditPage": page_of("AuditEvent"),
        "Usage": obj(&["id", "at", "subscription_id", "model", "status", "prompt_tokens", "completion_tokens"], json!({
            "id": s, "request_id": s, "at": millis, "tenant_id": s, "team_id": s, "subscription_id": s, "key_id": s,
            "model": s, "replica": s, "endpoint": s, "status": int, "prompt_tokens": int, "completion_tokens": int,
            "latency_ms": int, "ttft_ms": nint, "streamed": { "type": "boolean" }, "client_disconnected": { "type": "boolean" } })),
        "UsagePage": page_of("Usage"),
    })
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let item = paths
            .entry(format!("/api/v1{}", e.path))
            .or_insert_with(|| json!({}));
        item[e.method] = operation(e);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tollgate management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Everything the Tollgate portal does, as JSON. Authenticate with a personal access token \
                (create one on your account page): `Authorization: Bearer tgp-...`. Read tokens may only GET. \
                Errors are `{\"error\": {\"type\", \"message\"}}`. The OpenAI-compatible gateway is under /v1 and uses API keys (tg-...)."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "accessToken": [] }, { "session": [] }],
        "tags": [
            { "name": "identity" }, { "name": "catalog" }, { "name": "subscriptions" }, { "name": "keys" }, { "name": "usage" }, { "name": "tenancy" }
        ],
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "accessToken": { "type": "http", "scheme": "bearer", "description": "a personal access token, tgp-..." },
                "session": { "type": "apiKey", "in": "cookie", "name": "tollgate_session" }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_referenced_exists_and_operation_ids_are_unique() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"]
            .as_object()
            .unwrap_or_else(|| panic!("no schemas"));
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(schemas.contains_key(&name), "missing schema {name}");
        }
        let mut ids: Vec<String> = ENDPOINTS
            .iter()
            .map(|e| {
                operation(e)["operationId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }
}
