//! Request and record ids: a random per-process prefix and a counter, so they are unique across replicas and
//! restarts without a system call per request.

use http::HeaderMap;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct IdGen {
    prefix: u64,
    counter: AtomicU64,
}

impl IdGen {
    pub fn new() -> Self {
        Self {
            prefix: rand::random(),
            counter: AtomicU64::new(0),
        }
    }

    /// `tag` followed by 32 hex digits.
    pub fn next(&self, tag: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // By hand rather than `format!`: ids are made several times per request.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; 32];
        for (i, v) in [self.prefix, n].into_iter().enumerate() {
            for j in 0..16 {
                digits[i * 16 + j] = HEX[((v >> (60 - 4 * j)) & 0xf) as usize];
            }
        }
        let mut id = String::with_capacity(tag.len() + 32);
        id.push_str(tag);
        // Only ASCII hex digits.
        id.push_str(std::str::from_utf8(&digits).unwrap_or_default());
        id
    }
}

impl Default for IdGen {
    fn default() -> Self {
        Self::new()
    }
}

/// The client's `x-request-id` when it is a sane token (so logs and headers stay clean), else None.
pub fn client_request_id(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get("x-request-id")?.to_str().ok()?;
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then_some(v)
}

/// The id of a request: the client's `x-request-id` when it sent a sane one, else a new one.
pub fn request_id(ids: &IdGen, headers: &HeaderMap) -> String {
    match client_request_id(headers) {
        Some(id) => id.to_owned(),
        None => ids.next("req_"),
    }
}

/// Puts `id` in the answer's `x-request-id`: every gateway answer carries one, errors included, so a client can
/// quote it when it reports a failed call.
pub fn tag_response(response: &mut axum::response::Response, id: &str) {
    if let Ok(v) = http::HeaderValue::from_str(id) {
        response.headers_mut().insert("x-request-id", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_shaped() {
        let g = IdGen::new();
        let a = g.next("req_");
        let b = g.next("req_");
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 32);
        assert_eq!(a, format!("req_{:016x}{:016x}", g.prefix, 0));
        assert_eq!(b, format!("req_{:016x}{:016x}", g.prefix, 1));
    }

    #[test]
    fn only_sane_client_ids_are_echoed() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "abc-123_x.y:z".parse().unwrap());
        assert_eq!(client_request_id(&h), Some("abc-123_x.y:z"));
        h.insert("x-request-id", "has space".parse().unwrap());
        assert_eq!(client_request_id(&h), None);
        h.insert("x-request-id", "x".repeat(129).parse().unwrap());
        assert_eq!(client_request_id(&h), None);
        assert_eq!(client_request_id(&HeaderMap::new()), None);
    }
}
