//! Where a client puts its key: `Authorization: Bearer <key>` (OpenAI's clients), `api-key: <key>` (Azure's) or
//! `x-api-key: <key>` (Anthropic's).

use http::{header, HeaderMap};

/// The presented key, or None when the request carries none. A malformed Authorization header counts as a
/// presented (and therefore invalid) key, not a missing one.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let text = v.to_str().unwrap_or("");
        let key = text
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
            .map(|_| text[7..].trim())
            .unwrap_or("");
        return Some(key);
    }
    headers
        .get("api-key")
        .or_else(|| headers.get("x-api-key"))
        .map(|v| v.to_str().unwrap_or("").trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, http::HeaderValue::from_bytes(value).unwrap());
        h
    }

    #[test]
    fn keys_are_found_in_either_header() {
        assert_eq!(
            presented_key(&with("authorization", b"Bearer tg-abc")),
            Some("tg-abc")
        );
        assert_eq!(
            presented_key(&with("authorization", b"bearer  tg-abc ")),
            Some("tg-abc")
        );
        assert_eq!(presented_key(&with("api-key", b"tg-xyz")), Some("tg-xyz"));
        assert_eq!(presented_key(&with("x-api-key", b"tg-ant")), Some("tg-ant"));
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }

    #[test]
    fn odd_authorization_headers_are_invalid_not_missing() {
        assert_eq!(
            presented_key(&with("authorization", b"Basic dXNlcg==")),
            Some("")
        );
        assert_eq!(presented_key(&with("authorization", b"Bear")), Some(""));
        assert_eq!(
            presented_key(&with("authorization", b"Bearer \xff\xfe")),
            Some("")
        );
        assert_eq!(
            presented_key(&with("authorization", "Bearé tg".as_bytes())),
            Some("")
        );
    }
}
