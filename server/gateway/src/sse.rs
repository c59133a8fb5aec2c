//! Watching an engine's server-sent events as they pass: reading the token usage, and taking out what the gateway
//! asked for but the client did not (the final usage chunk, the usage field on every chunk).
//!
//! Chunks are forwarded as they arrive. Only an event cut across two network chunks is held back, until its end
//! arrives (an event is one JSON object, a few hundred bytes), so the stream is never buffered. When nothing
//! needs taking out, the engine's bytes are forwarded as they are, without a copy.
//!
//! Usage is found structurally without parsing each event: in raw JSON, `"usage"` followed by a colon can only be
//! a key (inside a string the quotes would be escaped), and it is accepted only as the last field of the event's
//! object, which is where vLLM writes it. vLLM writes compact JSON; whitespace between tokens, as Python's
//! `json.dumps` writes it, is accepted too.

use crate::model_name::ModelRename;
use memchr::memmem;
use std::sync::LazyLock;

// Searchers built once: `memmem::find`/`rfind` build one per call, which costs more than the search itself on
// events this small.
static EVENT_END: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\n\n"));
static USAGE_NAME: LazyLock<memmem::FinderRev<'static>> =
    LazyLock::new(|| memmem::FinderRev::new(b"\"usage\""));
static CHOICES_NAME: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"choices\""));
static PROMPT_TOKENS: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"prompt_tokens\""));
use serde::Deserialize;

/// Token counts as the engine reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

impl Usage {
    pub fn total(self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// An event bigger than this is passed through unread rather than held (a defence against a broken engine).
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// What to send the client for one chunk from the engine.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// The chunk exactly as received.
    Same,
    /// Different bytes (possibly none).
    Rewritten(Vec<u8>),
}

#[derive(Debug)]
pub struct SseScanner {
    carry: Vec<u8>,
    strip_usage_chunk: bool,
    strip_usage_field: bool,
    /// The latest usage object the engine reported, as raw JSON (empty: none yet). Parsed only when asked for,
    /// once per request rather than once per chunk.
    usage_json: Vec<u8>,
    data_events: u64,
    done: bool,
    /// The engine's model name to put back to the client's, in each event.
    rename: Option<ModelRename>,
}

enum Action {
    Keep,
    Drop,
    /// Remove `event[from..to]`.
    Cut(usize, usize),
}

impl SseScanner {
    /// A scanner for a client that did or did not ask for the usage chunk and the per-chunk usage.
    pub fn new(client_wants_usage_chunk: bool, client_wants_continuous_usage: bool) -> Self {
        Self {
            carry: Vec::new(),
            strip_usage_chunk: !client_wants_usage_chunk,
            strip_usage_field: !client_wants_continuous_usage,
            usage_json: Vec::new(),
            data_events: 0,
            done: false,
            rename: None,
        }
    }

    /// Also replaces the engine's served model name by the client's in each event's `model` field. An event is whole
    /// when it is looked at (a cut one is held until its end arrives), so the field is never split.
    pub fn renaming(mut self, rename: Option<ModelRename>) -> Self {
        self.rename = rename;
        self
    }

    /// Appends an event's bytes, renamed when that applies.
    fn emit(&self, out: &mut Vec<u8>, piece: &[u8]) {
        match &self.rename {
            Some(r) => r.write(out, piece),
            None => out.extend_from_slice(piece),
        }
    }

    /// The latest usage the engine reported (cumulative, so the latest is the most complete); None if there was
    /// none, or the latest was not a usage object.
    pub fn usage(&self) -> Option<Usage> {
        if self.usage_json.is_empty() {
            return None;
        }
        serde_json::from_slice(&self.usage_json).ok()
    }

    /// Whether `data: [DONE]` went by.
    pub fn done(&self) -> bool {
        self.done
    }

    /// `data:` events seen other than `[DONE]`.
    pub fn data_events(&self) -> u64 {
        self.data_events
    }

    /// Takes one chunk from the engine and says what to forward now.
    pub fn push(&mut self, chunk: &[u8]) -> Output {
        let had_carry = !self.carry.is_empty();
        let joined;
        let data: &[u8] = if had_carry {
            let mut c = std::mem::take(&mut self.carry);
            c.extend_from_slice(chunk);
            joined = c;
            &joined
        } else {
            chunk
        };
        // Built only once the output differs from the input.
        let mut out: Option<Vec<u8>> = had_carry.then(|| Vec::with_capacity(data.len()));
        let mut pos = 0;
        while let Some(i) = EVENT_END.find(&data[pos..]) {
            let end = pos + i + 2;
            let event = &data[pos..end];
            let action = self.on_event(event);
            let renamed = self.rename.as_ref().is_some_and(|r| r.found_in(event));
            match action {
                Action::Keep if !renamed => {
                    if let Some(o) = &mut out {
                        o.extend_from_slice(event);
                    }
                }
                Action::Keep => {
                    let o = out.get_or_insert_with(|| rewritten_from(data, pos));
                    self.emit(o, event);
                }
                Action::Drop => {
                    out.get_or_insert_with(|| rewritten_from(data, pos));
                }
                Action::Cut(from, to) => {
                    let o = out.get_or_insert_with(|| rewritten_from(data, pos));
                    self.emit(o, &event[..from]);
                    self.emit(o, &event[to..]);
                }
            }
            pos = end;
        }
        let rest = &data[pos..];
        if !rest.is_empty() {
            let o = out.get_or_insert_with(|| rewritten_from(data, pos));
            if rest.len() > MAX_EVENT_BYTES {
                o.extend_from_slice(rest);
            } else {
                self.carry = rest.to_vec();
            }
        }
        match out {
            None => Output::Same,
            Some(o) => Output::Rewritten(o),
        }
    }

    /// Bytes held back when the stream ends (an unterminated last event), to forward as they are.
    pub fn finish(&mut self) -> Vec<u8> {
        let tail = std::mem::take(&mut self.carry);
        let mut out = Vec::with_capacity(tail.len());
        self.emit(&mut out, &tail);
        out
    }

    fn on_event(&mut self, event: &[u8]) -> Action {
        let Some(payload) = event.strip_prefix(b"data:") else {
            return Action::Keep;
        };
        let payload = trim_ascii(payload);
        if payload == b"[DONE]" {
            self.done = true;
            return Action::Keep;
        }
        self.data_events += 1;
        let Some((key_at, value_at)) = last_usage_field(event) else {
            return Action::Keep;
        };
        if event.get(value_at) != Some(&b'{') {
            return Action::Keep;
        }
        let Some(len) = object_len(&event[value_at..]) else {
            return Action::Keep;
        };
        let value_end = value_at + len;
        // Only the last field of the top-level object: what follows must be `}` and the event's end.
        if trim_ascii(&event[value_end..]) != b"}" {
            return Action::Keep;
        }
        let usage = &event[value_at..value_end];
        if PROMPT_TOKENS.find(usage).is_none() {
            // Not a usage object as vLLM writes it: left alone, and the last good one stands.
            return Action::Keep;
        }
        self.usage_json.clear();
        self.usage_json.extend_from_slice(usage);
        if has_empty_choices(event) {
            // The final usage chunk: all or nothing.
            if self.strip_usage_chunk {
                Action::Drop
            } else {
                Action::Keep
            }
        } else if self.strip_usage_field {
            Action::Cut(key_at, value_end)
        } else {
            Action::Keep
        }
    }
}

/// The output for a chunk that differs from the input from `pos` on: what came before, with room for the rest
/// (and for a model name longer than the served one) so that it is allocated once.
fn rewritten_from(data: &[u8], pos: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    out.extend_from_slice(&data[..pos]);
    out
}

/// The usage of a whole (non-streamed) response body. vLLM writes `usage` last, so it is looked for from the end
/// first; a body laid out differently is parsed whole.
pub fn usage_of_body(body: &[u8]) -> Option<Usage> {
    if let Some(v) = last_key_value(body, &USAGE_NAME, body.len()) {
        if let Some(len) = object_len(&body[v..]) {
            if let Ok(u) = serde_json::from_slice::<Usage>(&body[v..v + len]) {
                return Some(u);
            }
        }
    }
    #[derive(Deserialize)]
    struct Whole {
        usage: Option<Usage>,
    }
    serde_json::from_slice::<Whole>(body).ok()?.usage
}

/// The event that tells a streaming client the engine failed after the stream began. The `openai` client raises
/// an `APIError` with this message.
pub fn error_event(message: &str) -> Vec<u8> {
    let body = serde_json::json!({"error": {
        "message": message, "type": "upstream_error", "param": null, "code": "upstream_error"
    }});
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(body.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}

/// Length of the JSON object at the start of `s` (which starts with `{`), matching braces outside strings.
fn object_len(s: &[u8]) -> Option<usize> {
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

/// The value's start of the last key `name` (a searcher for it, quotes included) in `s[..end]`.
fn last_key_value(s: &[u8], name: &memmem::FinderRev<'_>, mut end: usize) -> Option<usize> {
    loop {
        let at = name.rfind(&s[..end])?;
        if let Some(v) = value_after_key(s, at + name.needle().len()) {
            return Some(v);
        }
        end = at;
    }
}

/// The last `usage` key that follows another field: where its preceding comma is, and where its value starts.
fn last_usage_field(event: &[u8]) -> Option<(usize, usize)> {
    let mut end = event.len();
    loop {
        let at = USAGE_NAME.rfind(&event[..end])?;
        let before = event[..at].trim_ascii_end();
        if before.ends_with(b",") {
            if let Some(v) = value_after_key(event, at + USAGE_NAME.needle().len()) {
                return Some((before.len() - 1, v));
            }
        }
        end = at;
    }
}

/// Whether the event has `"choices": []`: the final usage chunk.
fn has_empty_choices(event: &[u8]) -> bool {
    CHOICES_NAME.find_iter(event).any(|at| {
        value_after_key(event, at + CHOICES_NAME.needle().len()).is_some_and(|v| {
            event[v..]
                .strip_prefix(b"[")
                .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"]"))
        })
    })
}

fn trim_ascii(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":{\"prompt_tokens\":9,\"total_tokens\":9,\"completion_tokens\":0}}\n\n";
    const TOKEN: &str = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The\"}}],\"usage\":{\"prompt_tokens\":9,\"total_tokens\":10,\"completion_tokens\":1}}\n\n";
    const FINAL: &str = "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"total_tokens\":10,\"completion_tokens\":1}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    fn whole_stream() -> String {
        [ROLE, TOKEN, FINAL, DONE].concat()
    }

    /// Feeds `input` cut into pieces at `cuts` and returns what the client gets.
    fn run(scanner: &mut SseScanner, input: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut start = 0;
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            let piece = &input[start..c];
            match scanner.push(piece) {
                Output::Same => out.extend_from_slice(piece),
                Output::Rewritten(v) => out.extend_from_slice(&v),
            }
            start = c;
        }
        out.extend_from_slice(&scanner.finish());
        out
    }

    #[test]
    fn a_usage_field_that_is_not_usage_is_left_alone_and_the_last_good_one_stands() {
        let odd = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}],\"usage\":{\"note\":\"hi\"}}\n\n";
        let mut s = SseScanner::new(false, false);
        let input = [ROLE, TOKEN, odd].concat();
        let out = run(&mut s, input.as_bytes(), &[]);
        assert!(
            String::from_utf8(out).unwrap().ends_with(odd),
            "kept as sent"
        );
        assert_eq!(s.usage().map(|u| u.completion_tokens), Some(1));
    }

    fn without_usage_field(s: &str) -> String {
        let at = s.rfind(",\"usage\":").unwrap();
        let end = s.rfind('}').unwrap();
        format!("{}{}", &s[..at], &s[end..])
    }

    #[test]
    fn a_client_that_asked_nothing_gets_neither_usage_chunk_nor_usage_fields() {
        let input = whole_stream();
        let mut s = SseScanner::new(false, false);
        let out = run(&mut s, input.as_bytes(), &[]);
        let expected = [
            without_usage_field(ROLE),
            without_usage_field(TOKEN),
            DONE.into(),
        ]
        .concat();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        assert_eq!(
            s.usage(),
            Some(Usage {
                prompt_tokens: 9,
                completion_tokens: 1
            })
        );
        assert!(s.done());
        assert_eq!(s.data_events(), 3);
    }

    #[test]
    fn json_written_with_spaces_is_read_and_stripped_alike() {
        // As Python's json.dumps writes events (separators ", " and ": ").
        let spaced = |s: &str| s.replace(",\"", ", \"").replace("\":", "\": ");
        let (role, token, last) = (spaced(ROLE), spaced(TOKEN), spaced(FINAL));
        assert!(last.contains("\"choices\": [], \"usage\": {"), "{last}");
        let input = [role.as_str(), token.as_str(), last.as_str(), DONE].concat();
        let mut s = SseScanner::new(false, false);
        let out = String::from_utf8(run(&mut s, input.as_bytes(), &[7, 100])).unwrap();
        let cut = |e: &str| {
            let at = e.rfind(", \"usage\": ").unwrap();
            format!("{}{}", &e[..at], &e[e.rfind('}').unwrap()..])
        };
        assert_eq!(out, [cut(&role), cut(&token), DONE.into()].concat());
        assert_eq!(
            s.usage().map(|u| (u.prompt_tokens, u.completion_tokens)),
            Some((9, 1))
        );
        assert_eq!(
            usage_of_body(
                b"{\"id\": \"x\", \"usage\" : {\"prompt_tokens\": 3, \"completion_tokens\": 5}}"
            ),
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 5
            })
        );
    }

    #[test]
    fn a_client_that_asked_for_the_usage_chunk_keeps_it() {
        let input = whole_stream();
        let mut s = SseScanner::new(true, false);
        let out = run(&mut s, input.as_bytes(), &[]);
        let expected = [
            without_usage_field(ROLE),
            without_usage_field(TOKEN),
            FINAL.into(),
            DONE.into(),
        ]
        .concat();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn a_client_that_asked_for_everything_gets_the_same_bytes_without_copies() {
        let input = whole_stream();
        let mut s = SseScanner::new(true, true);
        assert_eq!(s.push(input.as_bytes()), Output::Same);
        assert_eq!(s.usage().map(Usage::total), Some(10));
    }

    #[test]
    fn events_cut_anywhere_give_the_same_result() {
        let input = whole_stream();
        let mut whole = SseScanner::new(false, false);
        let expected = run(&mut whole, input.as_bytes(), &[]);
        for cut in 1..input.len() {
            for second in [cut + 1, cut + 7, input.len() - 1] {
                let cuts: Vec<usize> = if second > cut && second < input.len() {
                    vec![cut, second]
                } else {
                    vec![cut]
                };
                let mut s = SseScanner::new(false, false);
                let out = run(&mut s, input.as_bytes(), &cuts);
                assert_eq!(out, expected, "cuts {cuts:?}");
                assert_eq!(s.usage(), whole.usage(), "cuts {cuts:?}");
            }
        }
    }

    #[test]
    fn usage_written_inside_content_is_not_mistaken_for_the_field() {
        // The text of a token mentions usage: escaped quotes, so not a key.
        let tricky = "data: {\"choices\":[{\"delta\":{\"content\":\",\\\"usage\\\":{\\\"prompt_tokens\\\":99}}\"}}]}\n\n";
        let mut s = SseScanner::new(false, false);
        assert_eq!(s.push(tricky.as_bytes()), Output::Same);
        assert_eq!(s.usage(), None);
        // A usage key that is not the last field is left alone.
        let inner = "data: {\"a\":{\"x\":1,\"usage\":{\"prompt_tokens\":5}},\"b\":1}\n\n";
        assert_eq!(s.push(inner.as_bytes()), Output::Same);
        assert_eq!(s.usage(), None);
    }

    #[test]
    fn adversarial_streams_never_panic() {
        let inputs: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\n\n\n\n".to_vec(),
            b"data:".to_vec(),
            b"data: ,\"usage\":\n\n".to_vec(),
            b"data: ,\"usage\":{\n\n".to_vec(),
            b"data: ,\"usage\":{}}\n\n".to_vec(),
            b"data: ,\"usage\":{\"prompt_tokens\":-1}}\n\n".to_vec(),
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":\"\\\"}\"}}\n\n".to_vec(),
            b"data: }}}}},\"usage\":{}}}}}}\n\n".to_vec(),
            vec![0xff; 300],
            [b"data: ".as_slice(), &vec![b'{'; 5000], b"\n\n"].concat(),
            b": comment\n\nevent: x\n\n".to_vec(),
        ];
        for input in &inputs {
            for cut in [0, 1, input.len() / 2] {
                let mut s = SseScanner::new(false, false);
                let cuts: Vec<usize> = if cut > 0 && cut < input.len() {
                    vec![cut]
                } else {
                    vec![]
                };
                let out = run(&mut s, input, &cuts);
                assert!(out.len() <= input.len(), "output never grows: {input:?}");
            }
        }
    }

    #[test]
    fn the_served_model_name_becomes_the_clients_in_every_event_however_cut() {
        let served = |s: &str| s.replace("\"id\":\"c\"", "\"id\":\"c\",\"model\":\"meta/m\"");
        let input = served(&whole_stream());
        for wishes in [(false, false), (true, true)] {
            let mut whole = SseScanner::new(wishes.0, wishes.1);
            let plain = run(&mut whole, whole_stream().as_bytes(), &[]);
            let expected = String::from_utf8(plain)
                .unwrap()
                .replace("\"id\":\"c\"", "\"id\":\"c\",\"model\":\"m\"");
            for cut in 1..input.len() {
                let mut s =
                    SseScanner::new(wishes.0, wishes.1).renaming(ModelRename::new("meta/m", "m"));
                let out = run(&mut s, input.as_bytes(), &[cut]);
                assert_eq!(String::from_utf8(out).unwrap(), expected, "cut {cut}");
                assert_eq!(s.usage(), whole.usage());
            }
        }
    }

    #[test]
    fn an_oversized_event_is_passed_through_rather_than_held() {
        let mut s = SseScanner::new(false, false);
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        match s.push(&big) {
            Output::Rewritten(v) => assert_eq!(v.len(), big.len()),
            Output::Same => panic!("expected a copy"),
        }
        assert!(s.finish().is_empty());
    }

    #[test]
    fn usage_is_read_from_whole_bodies() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"\"usage\":{}"}}],"usage":{"prompt_tokens":3,"total_tokens":8,"completion_tokens":5,"prompt_tokens_details":null}}"#;
        assert_eq!(
            usage_of_body(body),
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 5
            })
        );
        let emb = br#"{"data":[],"usage":{"prompt_tokens":4,"total_tokens":4}}"#;
        assert_eq!(usage_of_body(emb).map(Usage::total), Some(4));
        for bad in [
            &b""[..],
            b"{",
            b"\"usage\":",
            b"{\"usage\":null}",
            b"{\"usage\":{\"prompt_tokens\":1e99}}",
        ] {
            assert_eq!(usage_of_body(bad), None);
        }
    }

    #[test]
    fn the_error_event_is_one_json_event() {
        let e = error_event("engine \"failed\"");
        let text = String::from_utf8(e).unwrap();
        let json = text
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["error"]["message"], "engine \"failed\"");
    }
}
