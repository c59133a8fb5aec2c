//! The OpenAPI 3.1 document of `/api/v1`, served at `/api/v1/openapi.json` and printed by
//! `tollgate --print-openapi`. It is derived, not written: each route comes from its handler's `#[utoipa::path]`
//! (registered with the router in `api::documented`, so no route exists undocumented), and each schema from the
//! type a handler takes or returns (`ToSchema`; domain types derive it behind `tollgate-domain`'s `openapi`
//! feature). `finish` adds, in one place, what every operation shares: the `/api/v1` prefix, path parameters,
//! the tenant header, the error answers and an operation id. `tests/python/test_openapi_responses.py` drives
//! every operation against a live server and validates each answer against its schema.

use serde_json::{json, Map, Value};

/// What the operations share but no handler names: the error body every one of them may answer.
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(super::error::ErrorBody)))]
pub struct Shared;

/// Where the API is mounted; handlers' paths are relative to it.
pub const PREFIX: &str = "/api/v1";

/// The errors any operation may answer, each in the one error shape (`error::ErrorBody`).
const ERRORS: [(&str, &str); 5] = [
    ("400", "invalid input"),
    ("401", "not signed in, or a bad token"),
    ("403", "not allowed, or a read-only token"),
    ("404", "not found, or not in your tenant"),
    ("409", "conflicts with the current state"),
];

/// The whole document.
pub fn document() -> Value {
    finish(super::documented().split_for_parts().1)
}

/// Completes the derived document with what every operation shares.
pub fn finish(doc: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_else(|_| json!({}));
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    let mut prefixed = Map::new();
    for (path, item) in paths {
        let mut item = item;
        if let Some(ops) = item.as_object_mut() {
            for (method, op) in ops.iter_mut() {
                complete(&path, method, op);
            }
        }
        prefixed.insert(format!("{PREFIX}{path}"), item);
    }
    doc["paths"] = Value::Object(prefixed);
    doc["openapi"] = json!("3.1.0");
    doc["info"] = json!({
        "title": "Tollgate management API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Everything the Tollgate portal does, as JSON. Authenticate with a personal access token \
            (create one on your account page): `Authorization: Bearer tgp-...`. Read tokens may only GET. \
            Errors are `{\"error\": {\"type\", \"message\"}}`. The OpenAI-compatible gateway is under /v1 and uses API keys (tg-...)."
    });
    doc["servers"] = json!([{ "url": "/" }]);
    doc["security"] = json!([{ "accessToken": [] }, { "session": [] }]);
    doc["tags"] = json!([
        { "name": "identity" }, { "name": "catalog" }, { "name": "subscriptions" }, { "name": "keys" },
        { "name": "usage" }, { "name": "tenancy" }
    ]);
    doc["components"]["securitySchemes"] = json!({
        "accessToken": { "type": "http", "scheme": "bearer", "description": "a personal access token, tgp-..." },
        "session": { "type": "apiKey", "in": "cookie", "name": "tollgate_session" }
    });
    doc
}

/// Adds the path parameters, the tenant header, the error answers and an operation id to one operation.
fn complete(path: &str, method: &str, op: &mut Value) {
    let mut params: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    if let Some(declared) = op["parameters"].as_array() {
        params.extend(declared.iter().filter(|p| p["in"] != "path").cloned());
    }
    params.push(json!({ "name": super::TENANT_HEADER, "in": "header", "required": false,
        "description": "tenant id to work in (default: the caller's first tenant)", "schema": { "type": "string" } }));
    op["parameters"] = Value::Array(params);
    for (status, what) in ERRORS {
        op["responses"][status] = json!({ "description": what,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    }
    op["operationId"] = json!(format!(
        "{method}_{}",
        path.trim_start_matches('/')
            .replace(['/', '{', '}'], "_")
            .trim_end_matches('_')
    ));
}

/// Every operation of the document: (method, path with its `/api/v1` prefix, whether it takes a body).
pub fn operations() -> Vec<(String, String, bool)> {
    let doc = document();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().cloned().unwrap_or_default() {
        for (method, op) in item.as_object().cloned().unwrap_or_default() {
            out.push((method, path.clone(), op.get("requestBody").is_some()));
        }
    }
    out
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
        let mut ids: Vec<String> = Vec::new();
        for item in doc["paths"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.values())
        {
            for op in item.as_object().into_iter().flat_map(|o| o.values()) {
                ids.push(op["operationId"].as_str().unwrap_or_default().to_string());
            }
        }
        let n = ids.len();
        assert!(n >= 34, "{n} operations");
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }

    #[test]
    fn every_operation_has_a_summary_and_documents_its_errors() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().cloned().unwrap_or_default() {
            assert!(path.starts_with(PREFIX), "{path}");
            for (method, op) in item.as_object().cloned().unwrap_or_default() {
                assert!(
                    op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                    "{method} {path}"
                );
                for (status, _) in ERRORS {
                    assert!(
                        op["responses"][status].is_object(),
                        "{method} {path} {status}"
                    );
                }
                let in_path = path.matches('{').count();
                let declared = op["parameters"]
                    .as_array()
                    .map_or(0, |p| p.iter().filter(|p| p["in"] == "path").count());
                assert_eq!(in_path, declared, "{method} {path}");
            }
        }
    }
}
