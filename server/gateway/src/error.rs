//! Every way the gateway refuses or fails a request, mapped in this one place to an HTTP status, headers and
//! OpenAI's error body `{"error": {"message", "type", "param", "code"}}`, which the `openai` clients turn into
//! their typed exceptions; on Anthropic's Messages API, Anthropic's body `{"type": "error", "error": {"type",
//! "message"}}`, which the `anthropic` clients read.

use crate::limits::{headers, LimitKind, Seen};
use crate::request::{Dialect, Invalid};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use tollgate_domain::grant::{KeyRejection, Limits};

#[derive(Debug)]
pub enum GatewayError {
    Auth(KeyRejection),
    /// A request without a key (the playground) under a subscription that is suspended.
    Suspended,
    BadRequest(Invalid),
    TooLarge {
        limit: usize,
    },
    /// The model does not exist, or this key's subscription does not cover it: alike, so keys reveal nothing.
    ModelNotFound(String),
    RateLimited {
        kind: LimitKind,
        retry_after_ms: i64,
        limits: Limits,
        seen: Seen,
        reset_ms: i64,
    },
    LimiterUnavailable,
    /// No ready replica serves the model; `starting` when some are on their way.
    NoReplica {
        model: String,
        starting: bool,
    },
    /// Every replica tried failed before answering.
    UpstreamUnavailable,
    UpstreamTimeout,
    /// The engine refused the request (a 4xx): its status and its message (see `engine_error.rs`).
    EngineRefused {
        status: StatusCode,
        message: String,
    },
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Auth(r) => {
                StatusCode::from_u16(r.http_status()).unwrap_or(StatusCode::UNAUTHORIZED)
            }
            Self::Suspended => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ModelNotFound(_) => StatusCode::NOT_FOUND,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::LimiterUnavailable | Self::NoReplica { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::EngineRefused { status, .. } => *status,
        }
    }

    /// (message, type, param, code) of the error body.
    fn parts(&self) -> (String, &'static str, Option<&str>, &'static str) {
        match self {
            Self::Auth(r) => (
                r.message().to_string(),
                "invalid_request_error",
                None,
                match r {
                    KeyRejection::Missing | KeyRejection::Invalid => "invalid_api_key",
                    KeyRejection::Expired => "expired_api_key",
                    KeyRejection::Revoked => "revoked_api_key",
                    KeyRejection::Suspended => "subscription_suspended",
                },
            ),
            Self::Suspended => (
                "The subscription is suspended.".into(),
                "invalid_request_error",
                None,
                "subscription_suspended",
            ),
            Self::BadRequest(i) => (
                i.message.clone(),
                "invalid_request_error",
                i.param.as_deref(),
                "invalid_request",
            ),
            Self::TooLarge { limit } => (
                format!("The request body is larger than the {limit} bytes this gateway accepts."),
                "invalid_request_error",
                None,
                "request_too_large",
            ),
            Self::ModelNotFound(m) => (
                format!("The model `{m}` does not exist or you do not have access to it."),
                "invalid_request_error",
                Some("model"),
                "model_not_found",
            ),
            Self::RateLimited {
                kind,
                retry_after_ms,
                ..
            } => {
                let wait = headers::retry_after_secs(*retry_after_ms);
                match kind {
                    LimitKind::Monthly => (
                        "You exceeded your subscription's monthly token quota.".into(),
                        "insufficient_quota",
                        None,
                        "insufficient_quota",
                    ),
                    LimitKind::Concurrency => (
                        format!(
                            "Too many concurrent requests for this subscription. Retry in {wait}s."
                        ),
                        "requests",
                        None,
                        "rate_limit_exceeded",
                    ),
                    LimitKind::Requests => (
                        format!("Rate limit reached for requests per minute. Retry in {wait}s."),
                        "requests",
                        None,
                        "rate_limit_exceeded",
                    ),
                    LimitKind::Tokens => (
                        format!("Rate limit reached for tokens per minute. Retry in {wait}s."),
                        "tokens",
                        None,
                        "rate_limit_exceeded",
                    ),
                }
            }
            Self::LimiterUnavailable => (
                "Rate limits cannot be checked right now; please retry shortly.".into(),
                "service_unavailable",
                None,
                "limiter_unavailable",
            ),
            Self::NoReplica { model, starting } => (
                if *starting {
                    format!("The model `{model}` is starting; retry in a few seconds.")
                } else {
                    format!("The model `{model}` has no replica ready to serve requests.")
                },
                "service_unavailable",
                None,
                "no_replica",
            ),
            Self::UpstreamUnavailable => (
                "The model's engines could not be reached or failed; please retry.".into(),
                "upstream_error",
                None,
                "upstream_unavailable",
            ),
            Self::UpstreamTimeout => (
                "The model's engine did not answer in time.".into(),
                "upstream_error",
                None,
                "upstream_timeout",
            ),
            Self::EngineRefused { message, .. } => (
                message.clone(),
                "invalid_request_error",
                None,
                "engine_refused",
            ),
        }
    }
}

/// OpenAI's error body.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "error": {"message": message, "type": kind, "param": param, "code": code}
    }))
    .unwrap_or_default()
}

/// Anthropic's error body, its `type` named from the status as Anthropic's API names them.
pub fn anthropic_error_body(status: StatusCode, message: &str) -> Vec<u8> {
    let kind = match status.as_u16() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    serde_json::to_vec(&serde_json::json!({
        "type": "error", "error": {"type": kind, "message": message}
    }))
    .unwrap_or_default()
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.response(Dialect::OpenAi)
    }
}

impl GatewayError {
    /// The answer in the error shape of the API the request was made to.
    pub fn response(self, dialect: Dialect) -> Response {
        let status = self.status();
        let (message, kind, param, code) = self.parts();
        let body = Bytes::from(match dialect {
            Dialect::Anthropic => anthropic_error_body(status, &message),
            Dialect::OpenAi | Dialect::Responses => error_body(&message, kind, param, code),
        });
        let mut response = (status, body).into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match &self {
            Self::RateLimited {
                retry_after_ms,
                limits,
                seen,
                reset_ms,
                ..
            } => {
                h.insert(
                    header::RETRY_AFTER,
                    headers::retry_after_secs(*retry_after_ms).into(),
                );
                headers::apply(h, limits, *seen, *reset_ms);
            }
            Self::NoReplica { starting: true, .. } | Self::LimiterUnavailable => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Self::Auth(_) => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(r: Response) -> serde_json::Value {
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn each_error_has_its_status_and_an_openai_body() {
        let cases = [
            (
                GatewayError::Auth(KeyRejection::Missing),
                401,
                "invalid_api_key",
            ),
            (
                GatewayError::Auth(KeyRejection::Revoked),
                401,
                "revoked_api_key",
            ),
            (
                GatewayError::Auth(KeyRejection::Expired),
                401,
                "expired_api_key",
            ),
            (
                GatewayError::Auth(KeyRejection::Suspended),
                403,
                "subscription_suspended",
            ),
            (
                GatewayError::TooLarge { limit: 10 },
                413,
                "request_too_large",
            ),
            (
                GatewayError::ModelNotFound("x".into()),
                404,
                "model_not_found",
            ),
            (GatewayError::LimiterUnavailable, 503, "limiter_unavailable"),
            (
                GatewayError::NoReplica {
                    model: "m".into(),
                    starting: false,
                },
                503,
                "no_replica",
            ),
            (
                GatewayError::UpstreamUnavailable,
                502,
                "upstream_unavailable",
            ),
            (GatewayError::UpstreamTimeout, 504, "upstream_timeout"),
        ];
        for (err, status, code) in cases {
            let r = err.into_response();
            assert_eq!(r.status().as_u16(), status);
            assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
            let v = body_of(r).await;
            assert_eq!(v["error"]["code"], code);
            assert!(v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
            assert!(v["error"].get("param").is_some());
        }
    }

    #[tokio::test]
    async fn a_bad_request_names_its_param() {
        let r = GatewayError::BadRequest(Invalid {
            message: "`n` must be between 1 and 128.".into(),
            param: Some("n".into()),
        })
        .into_response();
        assert_eq!(r.status(), 400);
        assert_eq!(body_of(r).await["error"]["param"], "n");
    }

    #[tokio::test]
    async fn rate_limited_answers_carry_retry_after_and_the_headers() {
        let r = GatewayError::RateLimited {
            kind: LimitKind::Tokens,
            retry_after_ms: 12_500,
            limits: Limits {
                tokens_per_minute: Some(100),
                requests_per_minute: Some(5),
                ..Limits::default()
            },
            seen: Seen {
                requests: 2,
                tokens: 90,
                month_tokens: 0,
            },
            reset_ms: 12_500,
        }
        .into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "13");
        assert_eq!(r.headers()["x-ratelimit-remaining-tokens"], "10");
        assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "3");
        assert_eq!(body_of(r).await["error"]["type"], "tokens");
    }

    #[tokio::test]
    async fn a_starting_model_says_when_to_retry() {
        let r = GatewayError::NoReplica {
            model: "m".into(),
            starting: true,
        }
        .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        let r = GatewayError::NoReplica {
            model: "m".into(),
            starting: false,
        }
        .into_response();
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
    }

    #[tokio::test]
    async fn engine_refusals_keep_their_status_and_message_in_our_body() {
        let r = GatewayError::EngineRefused {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: "too long".into(),
        }
        .into_response();
        assert_eq!(r.status(), 422);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let v = body_of(r).await;
        assert_eq!(v["error"]["message"], "too long");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "engine_refused");
    }
}
