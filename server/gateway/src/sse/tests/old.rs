//! The scanner as it was before it read SSE as the specification defines it (events ended only by `\n\n`, usage
//! only as the last field), kept to check that the new one does exactly what it did on vLLM's output.

#![allow(dead_code)]

use super::super::{Output, MAX_EVENT_BYTES};
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

#[derive(Debug)]
pub struct OldScanner {
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

impl OldScanner {
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
    pub fn usage(&self) -> Option<super::super::Usage> {
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
