//! Structured output: a JSON value that a JSON Schema accepts, drawn deterministically from a seed.
//!
//! vLLM constrains decoding to a schema (`response_format` `json_schema`, tool arguments, `guided_json`); the
//! simulator answers with an instance of the schema instead. Covered: `type` (one or a list), `properties` and
//! `required` (every property is written, so strict schemas that require all of them hold), `additionalProperties`
//! (never added), `items`, `prefixItems`, `minItems`/`maxItems`, `enum`, `const`, `anyOf`/`oneOf` (one branch),
//! `allOf` (merged properties), `$ref` into the document (`#/$defs/…`, `#/definitions/…`, as pydantic writes them),
//! `minimum`/`maximum` (and the exclusive forms), `minLength`/`maxLength`, and the string formats `date`,
//! `date-time`, `time`, `email`, `uri` and `uuid`. A schema that allows anything gets a short string. Recursion
//! stops at depth 8 (arrays become empty, nullable values null).

use serde_json::{Map, Number, Value};

use crate::rng::SplitMix64;

const WORDS: &[&str] = &[
    "red", "fox", "owl", "sea", "oak", "sky", "bee", "map", "sun", "cup", "elk", "yak",
];
const MAX_DEPTH: u32 = 8;

/// An instance of `schema` (a JSON Schema document); the same seed gives the same value.
pub fn instance(schema: &Value, seed: u64) -> Value {
    let mut g = Gen {
        root: schema,
        rng: SplitMix64::new(seed),
    };
    g.value(schema, 0)
}

/// A small JSON object with a few string and number fields: what `response_format` `json_object` gets.
pub fn any_object(seed: u64) -> Value {
    let mut rng = SplitMix64::new(seed);
    let mut m = Map::new();
    for i in 0..1 + rng.below(3) {
        let key = WORDS[rng.below(WORDS.len() as u64) as usize];
        let v = if i % 2 == 0 {
            Value::String(WORDS[rng.below(WORDS.len() as u64) as usize].to_string())
        } else {
            Value::Number(rng.below(100).into())
        };
        m.insert(key.to_string(), v);
    }
    Value::Object(m)
}

struct Gen<'a> {
    root: &'a Value,
    rng: SplitMix64,
}

impl<'a> Gen<'a> {
    fn value(&mut self, schema: &'a Value, depth: u32) -> Value {
        let s = match schema {
            Value::Object(s) => s,
            // `true` (or anything not an object) accepts every value.
            _ => return self.string(&Map::new()),
        };
        if let Some(target) = s.get("$ref").and_then(Value::as_str) {
            return match self.resolve(target) {
                Some(t) if depth < MAX_DEPTH => self.value(t, depth + 1),
                _ => Value::Null,
            };
        }
        if let Some(c) = s.get("const") {
            return c.clone();
        }
        if let Some(Value::Array(options)) = s.get("enum") {
            if !options.is_empty() {
                return options[self.pick(options.len())].clone();
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = s.get(key) {
                if !branches.is_empty() {
                    // Deep down, take a null branch when there is one, so recursive types end.
                    let null = branches
                        .iter()
                        .position(|b| b.get("type") == Some(&"null".into()));
                    let i = match null {
                        Some(i) if depth >= MAX_DEPTH / 2 => i,
                        _ => self.pick(branches.len()),
                    };
                    return self.value(&branches[i], depth + 1);
                }
            }
        }
        if let Some(Value::Array(parts)) = s.get("allOf") {
            return self.all_of(s, parts, depth);
        }
        let ty = match s.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(types)) => {
                let types: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
                match types.len() {
                    0 => "string",
                    _ if depth >= MAX_DEPTH && types.contains(&"null") => "null",
                    n => types[self.pick(n)],
                }
            }
            _ if s.contains_key("properties") => "object",
            _ if s.contains_key("items") || s.contains_key("prefixItems") => "array",
            _ => "string",
        };
        match ty {
            "object" => self.object(s, depth),
            "array" => self.array(s, depth),
            "integer" => self.integer(s),
            "number" => self.number(s),
            "boolean" => Value::Bool(self.rng.below(2) == 1),
            "null" => Value::Null,
            _ => self.string(s),
        }
    }

    fn pick(&mut self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }

    fn word(&mut self) -> &'static str {
        WORDS[self.pick(WORDS.len())]
    }

    /// `#/a/b` within the document (JSON Pointer, with `~0` and `~1` escapes).
    fn resolve(&self, target: &str) -> Option<&'a Value> {
        let pointer = target.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        let mut at = self.root;
        for part in pointer.strip_prefix('/')?.split('/') {
            let part = part.replace("~1", "/").replace("~0", "~");
            at = match at {
                Value::Object(m) => m.get(&part)?,
                Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(at)
    }

    fn object(&mut self, s: &'a Map<String, Value>, depth: u32) -> Value {
        let mut out = Map::new();
        if let Some(Value::Object(props)) = s.get("properties") {
            let required: Vec<&str> = match s.get("required") {
                Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            for (name, prop) in props {
                // Optional properties are left out deep down, so recursive objects end.
                if depth >= MAX_DEPTH && !required.contains(&name.as_str()) {
                    continue;
                }
                let v = self.value(prop, depth + 1);
                out.insert(name.clone(), v);
            }
        }
        Value::Object(out)
    }

    fn all_of(&mut self, s: &'a Map<String, Value>, parts: &'a [Value], depth: u32) -> Value {
        let mut merged = Map::new();
        for part in parts {
            if let Value::Object(m) = self.value(part, depth + 1) {
                merged.extend(m);
            }
        }
        if let Value::Object(own) = self.object(s, depth) {
            merged.extend(own);
        }
        Value::Object(merged)
    }

    fn array(&mut self, s: &'a Map<String, Value>, depth: u32) -> Value {
        let min = s.get("minItems").and_then(Value::as_u64).unwrap_or(0);
        let max = s
            .get("maxItems")
            .and_then(Value::as_u64)
            .unwrap_or(min.max(3))
            .max(min);
        let len = if depth >= MAX_DEPTH {
            min
        } else {
            let low = min.max(1).min(max);
            low + self.rng.below(max - low + 1)
        };
        let prefix: &[Value] = match s.get("prefixItems") {
            Some(Value::Array(p)) => p,
            _ => &[],
        };
        let items = s.get("items");
        let len = match items {
            // `items: false` (or none) after `prefixItems`: exactly the prefix.
            Some(Value::Bool(false)) | None if !prefix.is_empty() => prefix.len() as u64,
            _ => len.max(prefix.len() as u64).min(64),
        };
        (0..len as usize)
            .map(|i| match (prefix.get(i), items) {
                (Some(p), _) => self.value(p, depth + 1),
                (None, Some(item)) => self.value(item, depth + 1),
                (None, None) => Value::String(self.word().to_string()),
            })
            .collect::<Vec<_>>()
            .into()
    }

    fn bounds(&self, s: &Map<String, Value>) -> (f64, f64, bool, bool) {
        let get = |k: &str| s.get(k).and_then(Value::as_f64);
        let (lo, lo_open) = match (get("minimum"), get("exclusiveMinimum")) {
            (_, Some(x)) => (x, true),
            (Some(x), None) => (x, false),
            (None, None) => (0.0, false),
        };
        let (hi, hi_open) = match (get("maximum"), get("exclusiveMaximum")) {
            (_, Some(x)) => (x, true),
            (Some(x), None) => (x, false),
            (None, None) => (lo.max(0.0) + 100.0, false),
        };
        (lo, hi.max(lo), lo_open, hi_open)
    }

    fn integer(&mut self, s: &Map<String, Value>) -> Value {
        let (lo, hi, lo_open, hi_open) = self.bounds(s);
        let lo = if lo_open {
            lo.floor() as i64 + 1
        } else {
            lo.ceil() as i64
        };
        let hi = if hi_open {
            hi.ceil() as i64 - 1
        } else {
            hi.floor() as i64
        };
        let hi = hi.max(lo);
        let span = (hi - lo) as u64;
        Value::Number((lo + self.rng.below(span.saturating_add(1)) as i64).into())
    }

    fn number(&mut self, s: &Map<String, Value>) -> Value {
        let (lo, hi, _, _) = self.bounds(s);
        // Two decimals, strictly inside the bounds where they leave room.
        let x = lo + (hi - lo) * (0.01 + 0.98 * self.rng.unit_f64());
        let x = (x * 100.0).round() / 100.0;
        let x = if x <= lo || x >= hi {
            (lo + hi) / 2.0
        } else {
            x
        };
        Number::from_f64(x).map_or(Value::Null, Value::Number)
    }

    fn string(&mut self, s: &Map<String, Value>) -> Value {
        let n = self.rng.below(28) + 1;
        let text = match s.get("format").and_then(Value::as_str) {
            Some("date") => format!("2026-{:02}-{:02}", n % 12 + 1, n),
            Some("date-time") => format!("2026-{:02}-{:02}T{:02}:30:00Z", n % 12 + 1, n, n % 24),
            Some("time") => format!("{:02}:30:00", n % 24),
            Some("email") => format!("{}@example.com", self.word()),
            Some("uri") | Some("url") => format!("https://example.com/{}", self.word()),
            Some("uuid") => format!("00000000-0000-4000-8000-{:012x}", self.rng.next_u64() >> 16),
            _ => format!("{} {}", self.word(), self.word()),
        };
        let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = s
            .get("maxLength")
            .and_then(Value::as_u64)
            .map(|m| m as usize);
        let mut text = text;
        while text.chars().count() < min {
            text.push('a');
        }
        if let Some(max) = max {
            text = text.chars().take(max.max(min)).collect();
        }
        Value::String(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pydantic_schema_with_defs_enums_and_nesting() {
        // What pydantic writes for `class Event(BaseModel): name: str; day: date; guests: list[Person];
        // kind: Literal["a","b"]; score: float = Field(ge=0, le=1); note: Optional[str]` (strict, as the openai
        // SDK's `parse` sends it).
        let schema = json!({
            "type": "object", "additionalProperties": false,
            "required": ["name", "day", "guests", "kind", "score", "note"],
            "properties": {
                "name": {"type": "string"},
                "day": {"type": "string", "format": "date"},
                "guests": {"type": "array", "items": {"$ref": "#/$defs/Person"}},
                "kind": {"type": "string", "enum": ["a", "b"]},
                "score": {"type": "number", "minimum": 0, "maximum": 1},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}
            },
            "$defs": {"Person": {"type": "object", "additionalProperties": false, "required": ["age"],
                                 "properties": {"age": {"type": "integer", "minimum": 18, "maximum": 20}}}}
        });
        for seed in 0..50 {
            let v = instance(&schema, seed);
            let o = v.as_object().expect("an object");
            assert_eq!(o.len(), 6, "{v}");
            assert!(o["name"].is_string());
            let day = o["day"].as_str().unwrap_or("");
            assert_eq!(day.len(), 10, "{day}");
            assert!(["a", "b"].contains(&o["kind"].as_str().unwrap_or("")));
            let score = o["score"].as_f64().unwrap_or(-1.0);
            assert!((0.0..=1.0).contains(&score), "{score}");
            assert!(o["note"].is_string() || o["note"].is_null());
            let guests = o["guests"].as_array().expect("array");
            assert!(!guests.is_empty() && guests.len() <= 3);
            for g in guests {
                let age = g["age"].as_i64().unwrap_or(0);
                assert!((18..=20).contains(&age), "{g}");
            }
        }
        assert_eq!(instance(&schema, 3), instance(&schema, 3), "deterministic");
        assert_ne!(instance(&schema, 3), instance(&schema, 4));
    }

    #[test]
    fn bounds_lengths_consts_and_type_lists() {
        let s = json!({"type": "object", "properties": {
            "n": {"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 7},
            "s": {"type": "string", "minLength": 12, "maxLength": 12},
            "c": {"const": {"x": 1}},
            "t": {"type": ["integer", "null"]},
            "a": {"type": "array", "items": {"type": "boolean"}, "minItems": 4, "maxItems": 4},
            "m": {"type": "string", "format": "email"}
        }});
        for seed in 0..20 {
            let v = instance(&s, seed);
            assert_eq!(v["n"], 6);
            assert_eq!(v["s"].as_str().map(|s| s.chars().count()), Some(12));
            assert_eq!(v["c"], json!({"x": 1}));
            assert!(v["t"].is_i64() || v["t"].is_null());
            assert_eq!(v["a"].as_array().map(Vec::len), Some(4));
            assert!(v["m"].as_str().is_some_and(|m| m.ends_with("@example.com")));
        }
    }

    #[test]
    fn recursive_schemas_end() {
        let s = json!({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "required": ["v"], "properties": {
            "v": {"type": "integer"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
        }}}});
        let v = instance(&s, 1);
        assert!(v["v"].is_i64(), "{v}");
        assert!(v.to_string().len() < 1_000_000);
        assert_eq!(instance(&json!({"$ref": "#/nowhere"}), 1), Value::Null);
    }

    #[test]
    fn anything_goes_and_json_object() {
        assert!(instance(&json!({}), 1).is_string());
        assert!(instance(&json!(true), 1).is_string());
        let o = any_object(9);
        assert!(o.as_object().is_some_and(|m| !m.is_empty()), "{o}");
    }
}
