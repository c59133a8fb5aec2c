//! `GET /v1/models` and the dynamic LoRA endpoints, in vLLM's shapes (`ModelCard`,
//! plain-text success messages).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::openai::types::{parse_body, LoadLoraRequest, UnloadLoraRequest};
use crate::openai::wire::now_unix;
use crate::rng::random_uuid_hex;
use crate::state::SharedState;

fn permission(created: u64) -> Value {
    json!({
        "id": format!("modelperm-{}", random_uuid_hex()), "object": "model_permission", "created": created,
        "allow_create_engine": false, "allow_sampling": true, "allow_logprobs": true, "allow_search_indices": false,
        "allow_view": true, "allow_fine_tuning": false, "organization": "*", "group": null, "is_blocking": false
    })
}

/// The model list: base names first, then loaded adapters with their parent.
pub async fn list_models(State(state): State<SharedState>) -> Json<Value> {
    let created = now_unix();
    let cfg = &state.config;
    let mut data: Vec<Value> = cfg
        .served_model_names
        .iter()
        .map(|name| {
            json!({
                "id": name, "object": "model", "created": created, "owned_by": "vllm", "root": cfg.model,
                "parent": null, "max_model_len": cfg.max_model_len, "permission": [permission(created)]
            })
        })
        .collect();
    for a in state.lora.list() {
        data.push(json!({
            "id": a.name, "object": "model", "created": created, "owned_by": "vllm", "root": a.path,
            "parent": a.base_model_name, "max_model_len": null, "permission": [permission(created)]
        }));
    }
    Json(json!({"object": "list", "data": data}))
}

fn text(msg: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}

/// `POST /v1/load_lora_adapter`.
pub async fn load_lora(State(state): State<SharedState>, body: Bytes) -> Response {
    let result = parse_body::<LoadLoraRequest>(&body)
        .and_then(|r| state.lora.load(&r.lora_name, &r.lora_path, r.load_inplace));
    match result {
        Ok(msg) => text(msg),
        Err(e) => e.into_response(),
    }
}

/// `POST /v1/unload_lora_adapter`.
pub async fn unload_lora(State(state): State<SharedState>, body: Bytes) -> Response {
    match parse_body::<UnloadLoraRequest>(&body).and_then(|r| state.lora.unload(&r.lora_name)) {
        Ok(msg) => text(msg),
        Err(e) => e.into_response(),
    }
}
