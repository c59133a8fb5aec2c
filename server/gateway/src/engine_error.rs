//! An engine's refusal (a 4xx: a prompt too long, a bad parameter) as the client sees it: the engine's message,
//! read from its error body, in the client's terms (the API model id, not the engine's served name) and of bounded
//! length. The engine's body is never passed on as it is: it is the engine's format and may name its internals.

use crate::model_name::ModelRename;
use serde::Deserialize;

/// Longest message passed on, in bytes (an engine may echo a whole prompt back).
pub const MAX_MESSAGE_BYTES: usize = 1024;

const FALLBACK: &str = "The model's engine refused the request.";

/// The message to give the client for an engine's error `body`.
pub fn message(body: &[u8], rename: Option<&ModelRename>) -> String {
    // OpenAI's shape `{"error": {"message"}}`, or older vLLM's `{"message", "object": "error"}`.
    #[derive(Deserialize)]
    struct Body {
        error: Option<Inner>,
        message: Option<String>,
    }
    #[derive(Deserialize)]
    struct Inner {
        message: Option<String>,
    }
    let found = serde_json::from_slice::<Body>(body)
        .ok()
        .and_then(|b| b.error.and_then(|e| e.message).or(b.message))
        .filter(|m| !m.trim().is_empty());
    let Some(found) = found else {
        return FALLBACK.to_owned();
    };
    let mut m = match rename {
        Some(r) => r.text(&found),
        None => found,
    };
    if m.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !m.is_char_boundary(end) {
            end -= 1;
        }
        m.truncate(end);
        m.push('…');
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engines_message_is_read_renamed_and_capped() {
        let rename = ModelRename::new("meta/llama-3", "llama");
        let body = br#"{"error":{"message":"This model's (meta/llama-3) maximum context length is 8192 tokens.","type":"BadRequestError","param":null,"code":400}}"#;
        assert_eq!(
            message(body, rename.as_ref()),
            "This model's (llama) maximum context length is 8192 tokens."
        );
        let old = br#"{"object":"error","message":"bad n","type":"BadRequestError","code":400}"#;
        assert_eq!(message(old, rename.as_ref()), "bad n");
        for unreadable in [
            &b""[..],
            b"<html>",
            b"{\"error\":{}}",
            b"{\"message\":\"  \"}",
        ] {
            assert_eq!(message(unreadable, None), FALLBACK);
        }
        let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "é".repeat(2000));
        let m = message(long.as_bytes(), None);
        assert!(m.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8() && m.ends_with('…'));
    }
}
