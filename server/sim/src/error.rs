//! vLLM's error body: `{"error": {"message", "type", "param", "code"}}` with the HTTP
//! status repeated in `code` (vLLM's `ErrorResponse`/`ErrorInfo` since v0.10).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status (also the body's `code`).
    pub status: StatusCode,
    /// Human-readable message.
    pub message: String,
    /// vLLM's `type`, e.g. `BadRequestError`, `NotFoundError`.
    pub kind: String,
    /// The offending parameter, if known.
    pub param: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Info<'a>,
}

#[derive(Serialize)]
struct Info<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: u16,
}

impl ApiError {
    /// An error with an explicit status and type.
    pub fn new(status: StatusCode, kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind: kind.into(),
            param: None,
        }
    }

    /// 400 `BadRequestError` (vLLM's validation failures).
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            param: param.map(str::to_string),
            ..Self::new(StatusCode::BAD_REQUEST, "BadRequestError", message)
        }
    }

    /// 400 `Bad Request`: the body is not valid JSON or not the expected shape (vLLM's
    /// FastAPI `RequestValidationError` handler uses the status phrase as the type).
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad Request", message)
    }

    /// 400 `InvalidUserInput` (LoRA endpoints).
    pub fn invalid_user_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidUserInput", message)
    }

    /// 404 `NotFoundError`.
    pub fn not_found(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            param: param.map(str::to_string),
            ..Self::new(StatusCode::NOT_FOUND, "NotFoundError", message)
        }
    }

    /// 404 for a model that is neither served nor a loaded adapter (vLLM's exact message).
    pub fn model_not_found(model: &str) -> Self {
        Self::not_found(
            format!("The model `{model}` does not exist."),
            Some("model"),
        )
    }

    /// 500 `InternalServerError`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            message,
        )
    }

    /// 503 while the simulated model is still loading.
    pub fn loading() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableError",
            "The model is still loading.",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        let body = Body {
            error: Info {
                message: &self.message,
                kind: &self.kind,
                param: self.param.as_deref(),
                code: self.status.as_u16(),
            },
        };
        serde_json::to_string(&body).unwrap_or_else(|_| String::from("{\"error\":{}}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape_matches_vllm() {
        let e = ApiError::model_not_found("gpt-9");
        let v: serde_json::Value = serde_json::from_str(&e.body()).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "The model `gpt-9` does not exist.", "type": "NotFoundError", "param": "model", "code": 404}})
        );
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let v: serde_json::Value =
            serde_json::from_str(&ApiError::internal("x").body()).expect("json");
        assert_eq!(v["error"]["param"], serde_json::Value::Null);
        assert_eq!(v["error"]["code"], 500);
    }
}
