//! The OpenAPI 3.1 document of `/api/v1`, served at `/api/v1/openapi.json`. `ENDPOINTS` is the list the router
//! must match (an integration test calls each one, and fails on a route it does not list); the schemas are derived
//! from the types the handlers take and return (utoipa), and `tests/python/test_openapi_responses.py` validates a
//! live answer of every operation against them.

use super::catalog::{Archive, ModelList};
use super::error::ErrorBody;
use super::subscriptions::{Decision, NewKey, NewSubscription, PlanChange, Rotation, WithKeys};
use super::tenancy::{NewInvitation, NewTeam, NewTenant, RoleChange, TeamMember, TeamWithMembers};
use serde_json::{json, Map, Value};
use tollgate_domain::{
    api_key::{KeyCreated, KeyView},
    catalog::{ModelDetail, ModelInput, ModelView},
    page::Page,
    plan::{OverrideInput, PlanInput, PlanView},
    subscription::SubscriptionView,
    usage::UsageView,
    views::{
        AuditEventView, InvitationCreated, InvitationView, Me, MemberView, TeamView, TenantView,
    },
};

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
    ep!("post" "/models", "catalog", "Add a model (platform admins)", Some("ModelInput"), 201 Some("ModelView"), &[]),
    ep!("get" "/models/{id}", "catalog", "A model with the plans offering it", None, 200 Some("ModelDetail"), &[]),
    ep!("put" "/models/{id}", "catalog", "Replace a model's fields (platform admins)", Some("ModelInput"), 200 Some("ModelView"), &[]),
    ep!("get" "/plans", "catalog", "Every plan (archived ones for platform admins only)", None, 200 Some("[PlanView]"), &[("search", "name or description contains")]),
    ep!("post" "/plans", "catalog", "Create a plan (platform admins)", Some("PlanInput"), 201 Some("PlanView"), &[]),
    ep!("put" "/plans/{id}", "catalog", "Replace a plan's settings (platform admins)", Some("PlanInput"), 200 Some("PlanView"), &[]),
    ep!("post" "/plans/{id}/archive", "catalog", "Archive or restore a plan (platform admins)", Some("Archive"), 200 Some("PlanView"), &[]),
    ep!("put" "/plans/{id}/models/{model_id}", "catalog", "Set one model's limits under a plan (platform admins)", Some("OverrideInput"), 200 Some("PlanView"), &[]),
    ep!("get" "/subscriptions", "subscriptions", "The tenant's subscriptions", None, 200 Some("Page_SubscriptionView"), &[
        ("search", "model or team name"), ("state", "a state, or pending for both pending stages"), ("team_id", "one team"),
        ("page", "1-based page number"), ("per_page", "items per page")]),
    ep!("post" "/subscriptions", "subscriptions", "Subscribe a team to a model under a plan", Some("NewSubscription"), 201 Some("SubscriptionView"), &[]),
    ep!("get" "/subscriptions/{id}", "subscriptions", "A subscription with its keys (prefixes only)", None, 200 Some("WithKeys"), &[]),
    ep!("post" "/subscriptions/{id}/decision", "subscriptions", "Approve, reject, suspend, resume or cancel", Some("Decision"), 200 Some("SubscriptionView"), &[]),
    ep!("post" "/subscriptions/{id}/plan", "subscriptions", "Move a subscription to another plan (tenant admins)", Some("PlanChange"), 200 Some("SubscriptionView"), &[]),
    ep!("post" "/subscriptions/{id}/keys", "keys", "Create an API key; the secret is in this response only", Some("NewKey"), 201 Some("KeyCreated"), &[]),
    ep!("get" "/approvals", "subscriptions", "Requests waiting for the caller's decision", None, 200 Some("Page_SubscriptionView"), SEARCH),
    ep!("delete" "/keys/{id}", "keys", "Revoke an API key", None, 200 Some("KeyView"), &[]),
    ep!("post" "/keys/{id}/rotate", "keys", "Replace a key; the old one stays valid for the grace period", Some("Rotation"), 201 Some("KeyCreated"), &[]),
    ep!("get" "/usage", "usage", "Usage records, one per gateway request, newest first", None, 200 Some("Page_UsageView"), &[
        ("subscription_id", "one subscription"), ("key_id", "one API key (its id, the part after tg-)"), ("model", "one model id"),
        ("team_id", "one team"), ("from", "YYYY-MM-DD or epoch milliseconds"), ("until", "YYYY-MM-DD (inclusive) or epoch milliseconds"),
        ("all_tenants", "platform admins: every tenant"), ("page", "1-based page number"), ("per_page", "items per page")]),
    ep!("get" "/tenants", "tenancy", "All tenants (platform admins)", None, 200 Some("Page_TenantView"), SEARCH),
    ep!("post" "/tenants", "tenancy", "Create a tenant (platform admins)", Some("NewTenant"), 201 Some("TenantView"), &[]),
    ep!("get" "/teams", "tenancy", "The tenant's teams", None, 200 Some("Page_TeamView"), SEARCH),
    ep!("post" "/teams", "tenancy", "Create a team (tenant admins)", Some("NewTeam"), 201 Some("TeamView"), &[]),
    ep!("get" "/teams/{id}", "tenancy", "A team with its members", None, 200 Some("TeamWithMembers"), &[]),
    ep!("delete" "/teams/{id}", "tenancy", "Delete a team (tenant admins)", None, 204 None, &[]),
    ep!("post" "/teams/{id}/members", "tenancy", "Add a tenant member to a team", Some("TeamMember"), 204 None, &[]),
    ep!("delete" "/teams/{id}/members/{user_id}", "tenancy", "Remove someone from a team", None, 204 None, &[]),
    ep!("get" "/members", "tenancy", "The tenant's members", None, 200 Some("Page_MemberView"), SEARCH),
    ep!("put" "/members/{user_id}", "tenancy", "Change a member's role (tenant admins)", Some("RoleChange"), 204 None, &[]),
    ep!("delete" "/members/{user_id}", "tenancy", "Remove a member from the tenant (tenant admins)", None, 204 None, &[]),
    ep!("get" "/invitations", "tenancy", "The tenant's invitations", None, 200 Some("Page_InvitationView"), PAGE),
    ep!("post" "/invitations", "tenancy", "Invite someone; the link is in this response only", Some("NewInvitation"), 201 Some("InvitationCreated"), &[]),
    ep!("get" "/audit", "tenancy", "The audit log (tenant admins: their tenant; platform admins: all)", None, 200 Some("Page_AuditEventView"), &[
        ("action", "an action name such as subscription.approved"), ("actor", "actor email contains"),
        ("from", "YYYY-MM-DD"), ("until", "YYYY-MM-DD, inclusive"), ("tenant_id", "platform admins: one tenant"),
        ("page", "1-based page number"), ("per_page", "items per page")]),
];

/// A reference to a named schema; `[Name]` is an array of them.
fn schema_ref(name: &str) -> Value {
    match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(item) => json!({ "type": "array", "items": schema_ref(item) }),
        None => json!({ "$ref": format!("#/components/schemas/{name}") }),
    }
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

/// Every schema of the document, derived from the types the handlers take and return (and from nothing else:
/// a field added to a type is in the document the next time it is built).
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(
    ErrorBody,
    Me,
    ModelList,
    ModelDetail,
    ModelInput,
    ModelView,
    PlanView,
    PlanInput,
    OverrideInput,
    Archive,
    SubscriptionView,
    WithKeys,
    NewSubscription,
    Decision,
    PlanChange,
    KeyView,
    NewKey,
    KeyCreated,
    Rotation,
    TenantView,
    NewTenant,
    TeamView,
    TeamWithMembers,
    NewTeam,
    TeamMember,
    MemberView,
    RoleChange,
    InvitationView,
    NewInvitation,
    InvitationCreated,
    AuditEventView,
    UsageView,
    Page<SubscriptionView>,
    Page<TenantView>,
    Page<TeamView>,
    Page<MemberView>,
    Page<InvitationView>,
    Page<AuditEventView>,
    Page<UsageView>,
)))]
struct Schemas;

fn schemas() -> Value {
    use utoipa::OpenApi;
    let components = Schemas::openapi().components.unwrap_or_default();
    serde_json::to_value(components.schemas).unwrap_or_else(|_| json!({}))
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
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
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
