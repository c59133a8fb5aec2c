//! The engine writes its served model name (`meta/llama-3-8b-instruct`) into answers and error messages; the
//! client asked for the API model id (`llama-3-8b`), so the gateway puts that back, without parsing: in raw JSON
//! the string `"<served>"` right after `"model":` (whitespace allowed around the colon, as Python's `json.dumps`
//! writes it) can only be that field, since inside a string its quotes would be escaped.

use bytes::Bytes;
use memchr::memmem;

#[derive(Debug)]
pub struct ModelRename {
    served: String,
    api: String,
    /// The served name as a JSON string, quotes included.
    value: memmem::Finder<'static>,
    replacement: Vec<u8>,
}

impl ModelRename {
    /// None when the names are the same (nothing to do).
    pub fn new(served: &str, api: &str) -> Option<Self> {
        if served == api {
            return None;
        }
        let json = |name: &str| serde_json::Value::from(name).to_string().into_bytes();
        Some(Self {
            served: served.to_owned(),
            api: api.to_owned(),
            value: memmem::Finder::new(&json(served)).into_owned(),
            replacement: json(api),
        })
    }

    /// Where the `model` field's value is the served name in `s`.
    fn fields<'s>(&'s self, s: &'s [u8]) -> impl Iterator<Item = usize> + 's {
        self.value
            .find_iter(s)
            .filter(move |&at| follows_model_key(&s[..at]))
    }

    /// Whether `s` has the field to replace.
    pub fn found_in(&self, s: &[u8]) -> bool {
        self.fields(s).next().is_some()
    }

    /// Appends `s` to `out` with every `"model":"<served>"` replaced.
    pub fn write(&self, out: &mut Vec<u8>, s: &[u8]) {
        let mut pos = 0;
        for at in self.fields(s) {
            out.extend_from_slice(&s[pos..at]);
            out.extend_from_slice(&self.replacement);
            pos = at + self.value.needle().len();
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

/// Whether `before` ends with the key `"model"` and a colon, with optional JSON whitespace around the colon.
fn follows_model_key(before: &[u8]) -> bool {
    before
        .trim_ascii_end()
        .strip_suffix(b":")
        .is_some_and(|key| key.trim_ascii_end().ends_with(b"\"model\""))
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
        // Python's json.dumps puts a space after the colon; any JSON whitespace is allowed around it.
        let spaced = Bytes::from_static(b"{\"model\": \"meta/llama-3\", \"x\" :\"meta/llama-3\", \"model\"\n:\t\"meta/llama-3\"}");
        assert_eq!(
            &r.body(spaced)[..],
            b"{\"model\": \"llama\", \"x\" :\"meta/llama-3\", \"model\"\n:\t\"llama\"}"
        );
        let not_the_key =
            Bytes::from_static(br#"{"my_model":"meta/llama-3","model":["meta/llama-3"]}"#);
        assert_eq!(r.body(not_the_key.clone()), not_the_key);
        assert!(ModelRename::new("same", "same").is_none());
        assert_eq!(
            r.text("model meta/llama-3 is too small"),
            "model llama is too small"
        );
    }
}
