//! Finding the `usage` field in an event's JSON without parsing it.
//!
//! In raw JSON, `"usage"` whose opening quote is not escaped and that is followed by a colon can only be a key
//! (inside a string, its closing quote would be escaped). vLLM writes it as the last field of the object, so it is
//! looked for from the end first and accepted there when only the object's closing brace follows its value (then
//! it is a field of the top-level object). Anywhere else it is accepted only at the top level, which one pass that
//! skips strings and counts brackets tells. vLLM writes compact JSON; whitespace between tokens, as Python's
//! `json.dumps` writes it, is accepted too.

use memchr::{memchr2, memmem};
use std::ops::Range;
use std::sync::LazyLock;

// Searchers built once: `memmem::find`/`rfind` build one per call, which costs more than the search itself on
// events this small.
static USAGE_NAME: LazyLock<memmem::FinderRev<'static>> =
    LazyLock::new(|| memmem::FinderRev::new(b"\"usage\""));
static CHOICES_NAME: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"choices\""));
static PROMPT_TOKENS: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"prompt_tokens\""));

/// The top-level `usage` field of a JSON object.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct UsageField {
    /// The value, a JSON object.
    pub value: Range<usize>,
    /// What to take out to remove the field: its key, value and one comma next to it.
    pub cut: Range<usize>,
}

/// The top-level `usage` field of the JSON object `json`, when its value is an object that looks like usage as
/// vLLM writes it (with `prompt_tokens`). `"usage": null`, or anything else, is None.
pub(super) fn usage_field(json: &[u8]) -> Option<UsageField> {
    let (key_at, value_at) = last_key_value(json, &USAGE_NAME, json.len())?;
    let field = match value_end(json, value_at) {
        // The last field: only the object's closing brace follows.
        Some(end) if json[end..].trim_ascii() == b"}" => (key_at, value_at, end),
        _ => {
            let (key_at, value_at) = top_level_key(json, USAGE_NAME.needle())?;
            (key_at, value_at, value_end(json, value_at)?)
        }
    };
    let (key_at, value_at, value_end) = field;
    let value = &json[value_at..value_end];
    if !value.starts_with(b"{") || PROMPT_TOKENS.find(value).is_none() {
        return None;
    }
    Some(UsageField {
        value: value_at..value_end,
        cut: field_span(json, key_at, value_end)?,
    })
}

/// Where the value at `at` ends, for an object or `null` (what `usage` may hold).
fn value_end(json: &[u8], at: usize) -> Option<usize> {
    let rest = json.get(at..)?;
    if rest.starts_with(b"null") {
        return Some(at + 4);
    }
    rest.starts_with(b"{")
        .then(|| object_len(rest))
        .flatten()
        .map(|len| at + len)
}

/// The bytes to take out to remove the field `json[key_at..value_end]`: with the comma before it, or when it is
/// the first field, with the comma after it (and the whitespace that follows), or alone when it is the only one.
fn field_span(json: &[u8], key_at: usize, value_end: usize) -> Option<Range<usize>> {
    let before = json[..key_at].trim_ascii_end();
    if before.ends_with(b",") {
        return Some(before.len() - 1..value_end);
    }
    if !before.ends_with(b"{") {
        return None;
    }
    let comma = value_end + leading_spaces(&json[value_end..]);
    if json.get(comma) == Some(&b',') {
        let next = comma + 1 + leading_spaces(&json[comma + 1..]);
        Some(key_at..next)
    } else {
        Some(key_at..value_end)
    }
}

/// The key `name` (quotes included) among the top-level object's own fields: where it starts and where its value
/// starts. One pass, strings skipped with `memchr2`.
fn top_level_key(json: &[u8], name: &[u8]) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        match b {
            b'"' => {
                let end = string_end(json, i)?;
                if depth == 1 && &json[i..end] == name {
                    if let Some(v) = value_after_key(json, end) {
                        return Some((i, v));
                    }
                }
                i = end;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Where the string whose opening quote is at `open` ends (after its closing quote).
fn string_end(s: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    loop {
        let at = i + memchr2(b'"', b'\\', s.get(i..)?)?;
        if s[at] == b'"' {
            return Some(at + 1);
        }
        i = at + 2;
    }
}

/// Length of the JSON object at the start of `s` (which starts with `{`), matching braces outside strings.
pub(super) fn object_len(s: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

fn leading_spaces(s: &[u8]) -> usize {
    s.iter().take_while(|b| b.is_ascii_whitespace()).count()
}

/// Where the value of a key starts, given where the key's name (quotes included) ends: after optional whitespace,
/// a colon and optional whitespace. None when no colon follows (the name was a value, not a key).
fn value_after_key(s: &[u8], name_end: usize) -> Option<usize> {
    let colon = name_end + leading_spaces(s.get(name_end..)?);
    (s.get(colon) == Some(&b':')).then(|| colon + 1 + leading_spaces(&s[colon + 1..]))
}

/// Whether the quote at `at` is escaped (an odd number of backslashes before it): then it is inside a string.
fn escaped(s: &[u8], at: usize) -> bool {
    s[..at].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

/// The key's start and value's start of the last key `name` (a searcher for it, quotes included) in `s[..end]`.
pub(super) fn last_key_value(
    s: &[u8],
    name: &memmem::FinderRev<'_>,
    mut end: usize,
) -> Option<(usize, usize)> {
    loop {
        let at = name.rfind(&s[..end])?;
        if !escaped(s, at) {
            if let Some(v) = value_after_key(s, at + name.needle().len()) {
                return Some((at, v));
            }
        }
        end = at;
    }
}

/// The searcher for `"usage"`, for whole bodies.
pub(super) fn usage_name() -> &'static memmem::FinderRev<'static> {
    &USAGE_NAME
}

/// Whether the event has `"choices": []`: the final usage chunk.
pub(super) fn has_empty_choices(json: &[u8]) -> bool {
    CHOICES_NAME.find_iter(json).any(|at| {
        value_after_key(json, at + CHOICES_NAME.needle().len()).is_some_and(|v| {
            json[v..]
                .strip_prefix(b"[")
                .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"]"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(json: &str) -> Option<(&str, String)> {
        let f = usage_field(json.as_bytes())?;
        let cut = format!("{}{}", &json[..f.cut.start], &json[f.cut.end..]);
        Some((&json[f.value], cut))
    }

    const U: &str = r#"{"prompt_tokens":3,"completion_tokens":4}"#;

    #[test]
    fn usage_is_found_wherever_it_sits_at_the_top_level() {
        let last = format!(r#"{{"id":"x","choices":[],"usage":{U}}}"#);
        assert_eq!(found(&last), Some((U, r#"{"id":"x","choices":[]}"#.into())));
        let first = format!(r#"{{"usage":{U},"id":"x"}}"#);
        assert_eq!(found(&first), Some((U, r#"{"id":"x"}"#.into())));
        let middle = format!(r#"{{"id":"x", "usage" : {U} , "choices":[]}}"#);
        assert_eq!(
            found(&middle),
            Some((U, r#"{"id":"x" , "choices":[]}"#.into()))
        );
        let only = format!(r#"{{"usage":{U}}}"#);
        assert_eq!(found(&only), Some((U, "{}".into())));
        let first_spaced = format!("{{ \"usage\": {U},\n \"id\": 1}}");
        assert_eq!(found(&first_spaced), Some((U, "{ \"id\": 1}".into())));
    }

    #[test]
    fn usage_elsewhere_is_not_the_field() {
        for json in [
            // Nested, last or not.
            format!(r#"{{"a":{{"x":1,"usage":{U}}},"b":1}}"#),
            format!(r#"{{"a":{{"x":1,"usage":{U}}}}}"#),
            format!(r#"{{"choices":[{{"usage":{U}}}],"id":1}}"#),
            // Inside strings: escaped quotes, a key that ends in an escaped quote.
            format!(r#"{{"content":",\"usage\":{U}","id":1}}"#).replace(U, &U.replace('"', "\\\"")),
            format!(r#"{{"say \"usage":{U},"id":1}}"#),
            r#"{"a":"\"usage\":{\"prompt_tokens\":1}"}"#.into(),
            r#"{"type":"usage","usage":null,"x":{"usage":{"prompt_tokens":1}}}"#.into(),
            // Null, or not a usage object.
            r#"{"id":1,"usage":null}"#.into(),
            r#"{"usage":null,"id":1}"#.into(),
            r#"{"id":1,"usage":{"note":"hi"}}"#.into(),
            r#"{"id":1,"usage":[1]}"#.into(),
        ] {
            assert_eq!(found(&json), None, "{json}");
        }
    }

    #[test]
    fn the_top_level_key_walk_skips_strings_and_counts_brackets() {
        let json = br#"{"a":"}\"usage\":","b":[{"usage":1}],"usage" :2}"#;
        let (key, value) = top_level_key(json, b"\"usage\"").unwrap();
        assert_eq!(&json[key..key + 7], b"\"usage\"");
        assert_eq!(json[value], b'2');
        assert_eq!(top_level_key(br#"{"a":"\"#, b"\"usage\""), None);
        assert_eq!(top_level_key(b"}}{\"usage\":1", b"\"usage\""), None);
    }
}
