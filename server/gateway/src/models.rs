//! `GET /v1/models`: the models this key may call (its subscription's model, and those of the other subscriptions
//! it covers), with catalog metadata when the snapshot has it. Answered from memory; the engines are not asked
//! (what context they serve is what their probes last read).

use crate::auth::presented_key;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::ids;
use crate::limits::window::least_known;
use crate::routes::RouteTable;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::HeaderMap;
use serde_json::{json, Value};
use tollgate_domain::grant::{Grant, KeyEntry, KeySnapshot};
use tollgate_domain::time::Millis;

pub async fn list(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    let snapshot = gw.inner.keys.load();
    let mut response = match authorize(&gw, &snapshot, &headers) {
        Ok(key) => {
            let routes = gw.inner.routes.load();
            let data: Vec<Value> = key.grants().map(|g| entry(&snapshot, &routes, g)).collect();
            Json(json!({"object": "list", "data": data})).into_response()
        }
        Err(e) => e.into_response(),
    };
    ids::tag_response(&mut response, &ids::request_id(&gw.inner.ids, &headers));
    response
}

pub async fn one(
    State(gw): State<Gateway>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let snapshot = gw.inner.keys.load();
    let mut response = match authorize(&gw, &snapshot, &headers) {
        Ok(key) => match key.grants().find(|g| g.model == id) {
            Some(grant) => Json(entry(&snapshot, &gw.inner.routes.load(), grant)).into_response(),
            None => GatewayError::ModelNotFound(id).into_response(),
        },
        Err(e) => e.into_response(),
    };
    ids::tag_response(&mut response, &ids::request_id(&gw.inner.ids, &headers));
    response
}

fn authorize<'a>(
    gw: &Gateway,
    snapshot: &'a KeySnapshot,
    headers: &HeaderMap,
) -> Result<&'a KeyEntry, GatewayError> {
    snapshot
        .resolve(presented_key(headers), Millis(tollgate_store::now_millis()))
        .map(|(key, _)| key)
        .map_err(|r| {
            gw.inner.metrics.auth_failure(r);
            GatewayError::Auth(r)
        })
}

/// A model's card. `max_model_len` is what a request may use: the catalog's context, or less when the engines
/// serving the model were started with less (as their probes read it).
fn entry(snapshot: &KeySnapshot, routes: &RouteTable, grant: &Grant) -> Value {
    match snapshot.model_card(&grant.model) {
        Some(card) => {
            let served = routes.get(&grant.model).map_or(0, |t| t.context_limit());
            json!({
                "id": card.id, "object": "model", "created": card.created, "owned_by": card.owned_by,
                "display_name": card.display_name, "task": card.task, "context_length": card.context_length,
                "max_model_len": least_known(card.context_length, served), "status": card.status,
            })
        }
        None => json!({"id": grant.model, "object": "model", "created": 0, "owned_by": "tollgate"}),
    }
}
