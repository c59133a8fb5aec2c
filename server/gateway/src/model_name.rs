//! The engine writes its served model name (`meta/llama-3-8b-instruct`) into answers and error messages; the
//! client asked for the API model id (`llama-3-8b`), so the gateway puts that back, without parsing: in raw JSON
//! the exact bytes `"model":"<served>"` can only be that field (inside a string the quotes would be escaped).

use bytes::Bytes;
use memchr::memmem;

#[derive(Debug)]
pub struct ModelRename {
    served: String,
    api: String,
    field: memmem::Finder<'static>,
    replacement: Vec<u8>,
}

impl ModelRename {
    /// None when the names are the same (nothing to do).
    pub fn new(served: &str, api: &str) -> Option<Self> {
        if served == api {
            return None;
        }
        let field =
            |name: &str| format!("\"model\":{}", serde_json::Value::from(name)).into_bytes();
        Some(Self {
            served: served.to_owned(),
            api: api.to_owned(),
            field: memmem::Finder::new(&field(served)).into_owned(),
            replacement: field(api),
        })
    }

    /// Whether `s` has the field to replace.
    pub fn found_in(&self, s: &[u8]) -> bool {
        self.field.find(s).is_some()
    }

    /// Appends `s` to `out` with every `"model":"<served>"` replaced.
    pub fn write(&self, out: &mut Vec<u8>, s: &[u8]) {
        let mut pos = 0;
        for at in self.field.find_iter(s) {
            out.extend_from_slice(&s[pos..at]);
            out.extend_from_slice(&self.replacement);
            pos = at + self.field.needle().len();
        }
        out.extend_from_slice(&s[pos..]);
    }

    /// A whole body with the field replaced (the same bytes, uncopied, when it has none).
    pub fn body(&self, body: Bytes) -> Bytes {
        if !self.found_in(&body) {
            return body;
        }
        let mut out = Vec::with_capacity(body.len() + self.replacement.len());
        self.write(&mut out, &body);
        Bytes::from(out)
    }

    /// Free text (an engine's error message) with the served name replaced.
    pub fn text(&self, s: &str) -> String {
        s.replace(&self.served, &self.api)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_field_is_replaced_and_nothing_else() {
        let r = ModelRename::new("meta/llama-3", "llama").unwrap();
        let body = Bytes::from_static(
            br#"{"id":"x","model":"meta/llama-3","choices":[{"text":"\"model\":\"meta/llama-3\" said meta/llama-3"}]}"#,
        );
        let out = r.body(body);
        assert_eq!(
            &out[..],
            br#"{"id":"x","model":"llama","choices":[{"text":"\"model\":\"meta/llama-3\" said meta/llama-3"}]}"#
        );
        let untouched = Bytes::from_static(br#"{"model":"meta/llama-3-other"}"#);
        assert_eq!(r.body(untouched.clone()), untouched);
        assert!(ModelRename::new("same", "same").is_none());
        assert_eq!(
            r.text("model meta/llama-3 is too small"),
            "model llama is too small"
        );
    }
}
