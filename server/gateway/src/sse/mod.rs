//! Watching an engine's server-sent events as they pass: reading the token usage, and taking out what the gateway
//! asked for but the client did not (the final usage chunk, the usage field on every chunk).
//!
//! The stream is read as the WHATWG server-sent events specification defines it (`lines.rs`): lines end with
//! `\r\n`, `\n` or `\r`, an event ends at a blank line, its data is the values of its `data:` lines (one optional
//! space after the colon taken off) joined with `\n`, wherever they sit among its comments (`:`), `event:`, `id:`
//! and `retry:` lines. vLLM writes one `data: {json}\n\n` per event; other engines (uvicorn apps, proxies) write
//! `\r\n`.
//!
//! Chunks are forwarded as they arrive. Only an event cut across two network chunks is held back, until its blank
//! line arrives (an event is one JSON object, a few hundred bytes), so the stream is never buffered. When nothing
//! needs taking out, the engine's bytes are forwarded as they are, without a copy. A blank line ended by a `\r`
//! that is a chunk's last byte ends its event at once; a `\n` that starts the next chunk is the rest of that line
//! end (kept or dropped with its event). The usage field of data written over several `data:` lines is cut by
//! writing the event's data lines anew, less the field (`lines::with_data`); vLLM never does that.
//!
//! Usage is found without parsing each event (`usage.rs`): wherever the `usage` key sits among the top-level
//! fields, looked for from the end first, where vLLM writes it. This is hand-written because it is on every
//! streamed chunk's path. Measured by `benches/sse.rs` (one 279-byte event per chunk, on a shared 2-core machine):
//! reading the usage of a vLLM event costs about 210 ns, reading and cutting it about 230 ns, an event with no usage
//! about 100 ns, usage written first (one walk over the top level) about 360 ns; parsing each event with
//! `serde_json`, into a struct of the usage alone, costs about 460 ns before anything is cut or forwarded.

mod lines;
mod usage;

#[cfg(test)]
mod tests;

use crate::model_name::ModelRename;
use crate::request::Dialect;
use serde::Deserialize;
use std::sync::Arc;

/// Token counts as the engine reports them. An object with `prompt_tokens`, or (vLLM's rerank answers) only
/// `total_tokens`, which are then all prompt tokens; anything else is not a usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "RawUsage")]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// OpenAI's names (`prompt_tokens`, `completion_tokens`, `total_tokens`), or those of Anthropic's Messages and
/// OpenAI's Responses (`input_tokens`, `output_tokens`; Anthropic counts cached input apart, in
/// `cache_creation_input_tokens` and `cache_read_input_tokens`, which are input too).
#[derive(Deserialize)]
struct RawUsage {
    #[serde(alias = "input_tokens")]
    prompt_tokens: Option<u64>,
    #[serde(default, alias = "output_tokens")]
    completion_tokens: u64,
    total_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
}

impl TryFrom<RawUsage> for Usage {
    type Error = &'static str;

    fn try_from(r: RawUsage) -> Result<Self, Self::Error> {
        let cached = r
            .cache_creation_input_tokens
            .saturating_add(r.cache_read_input_tokens);
        let prompt = r.prompt_tokens.map(|p| p.saturating_add(cached));
        match (prompt, r.total_tokens) {
            (Some(prompt_tokens), _) => Ok(Self {
                prompt_tokens,
                completion_tokens: r.completion_tokens,
            }),
            (None, Some(total)) => Ok(Self {
                prompt_tokens: total.saturating_sub(r.completion_tokens),
                completion_tokens: r.completion_tokens,
            }),
            (None, None) => Err("a usage object names prompt_tokens or total_tokens"),
        }
    }
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
    /// The last chunk ended with an event whose blank line was a `\r`: a `\n` that starts the next chunk is the
    /// rest of that line end. Some(true) when that event was dropped (so is the `\n`).
    open_cr: Option<bool>,
    /// The engine's model name to put back to the client's, in each event.
    rename: Option<Arc<ModelRename>>,
    /// Which API's events these are.
    dialect: Dialect,
    /// Usage as the Messages and Responses APIs report it, in pieces over several events.
    events: EventUsage,
    /// A rewritten chunk's buffer, given back by the caller (`recycle`) for the next one: a stream whose events
    /// are all rewritten (usage fields taken out) then allocates no buffer per event.
    spare: Vec<u8>,
    /// The data of each event read, for the tests to compare with another parser's.
    #[cfg(test)]
    seen: Vec<Vec<u8>>,
}

enum Action {
    Keep,
    Drop,
    /// Remove `event[from..to]`.
    Cut(usize, usize),
    /// Send these bytes instead (an event whose data spans several lines, with its usage field taken out).
    Replace(Vec<u8>),
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
            open_cr: None,
            rename: None,
            dialect: Dialect::OpenAi,
            events: EventUsage::default(),
            spare: Vec::new(),
            #[cfg(test)]
            seen: Vec::new(),
        }
    }

    /// Reads the events as `dialect`'s (OpenAI's by default).
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// The event that ends a stream the engine failed after it began, in this API's shape.
    pub fn error_event(&self, message: &str) -> Vec<u8> {
        match self.dialect {
            Dialect::OpenAi => error_event(message),
            Dialect::Anthropic => named_event(
                "error",
                &serde_json::json!({"type": "error", "error": {"type": "api_error", "message": message}}),
            ),
            Dialect::Responses => named_event(
                "error",
                &serde_json::json!({"type": "error", "code": "upstream_error", "message": message, "param": null}),
            ),
        }
    }

    /// Also replaces the engine's served model name by the client's in each event's `model` field. An event is whole
    /// when it is looked at (a cut one is held until its end arrives), so the field is never split.
    pub fn renaming(mut self, rename: Option<Arc<ModelRename>>) -> Self {
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
        if self.dialect != Dialect::OpenAi {
            return self.events.usage();
        }
        if self.usage_json.is_empty() {
            return None;
        }
        serde_json::from_slice(&self.usage_json).ok()
    }

    /// Whether `data: [DONE]` went by.
    pub fn done(&self) -> bool {
        self.done
    }

    /// Events with data seen, other than `[DONE]`.
    pub fn data_events(&self) -> u64 {
        self.data_events
    }

    /// Takes back the buffer of an `Output::Rewritten` once its bytes are sent on, to write the next one in.
    pub fn recycle(&mut self, mut buffer: Vec<u8>) {
        // A buffer grown by an unusually large chunk is not kept.
        if buffer.capacity() <= 64 * 1024 {
            buffer.clear();
            self.spare = buffer;
        }
    }

    /// Takes one chunk from the engine and says what to forward now.
    pub fn push(&mut self, chunk: &[u8]) -> Output {
        if chunk.is_empty() {
            return Output::Same;
        }
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
        // Built only once the output differs from the input, in the spare buffer when there is one.
        let mut spare = std::mem::take(&mut self.spare);
        let mut out: Option<Vec<u8>> = had_carry.then(|| rewritten_from(&mut spare, data, 0));
        let mut pos = 0;
        if let Some(dropped) = self.open_cr.take() {
            if data.first() == Some(&b'\n') {
                if dropped {
                    out.get_or_insert_with(Vec::new);
                } else if let Some(o) = &mut out {
                    o.push(b'\n');
                }
                pos = 1;
            }
        }
        while let Some(ev) = lines::event_end(&data[pos..]) {
            let end = pos + ev.end;
            let event = &data[pos..end];
            let action = self.on_event(event, &ev);
            if ev.open_cr {
                self.open_cr = Some(matches!(action, Action::Drop));
            }
            let renamed = self.rename.as_ref().is_some_and(|r| r.found_in(event));
            match action {
                Action::Keep if !renamed => {
                    if let Some(o) = &mut out {
                        o.extend_from_slice(event);
                    }
                }
                Action::Keep => {
                    let o = out.get_or_insert_with(|| rewritten_from(&mut spare, data, pos));
                    self.emit(o, event);
                }
                Action::Drop => {
                    out.get_or_insert_with(|| rewritten_from(&mut spare, data, pos));
                }
                Action::Cut(from, to) => {
                    let o = out.get_or_insert_with(|| rewritten_from(&mut spare, data, pos));
                    self.emit(o, &event[..from]);
                    self.emit(o, &event[to..]);
                }
                Action::Replace(bytes) => {
                    let o = out.get_or_insert_with(|| rewritten_from(&mut spare, data, pos));
                    self.emit(o, &bytes);
                }
            }
            pos = end;
        }
        let rest = &data[pos..];
        if !rest.is_empty() {
            let o = out.get_or_insert_with(|| rewritten_from(&mut spare, data, pos));
            if rest.len() > MAX_EVENT_BYTES {
                o.extend_from_slice(rest);
            } else {
                self.carry = rest.to_vec();
            }
        }
        // Not needed this time (its capacity is still there): kept for the next chunk.
        if spare.capacity() > 0 {
            self.spare = spare;
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

    fn on_event(&mut self, event: &[u8], ev: &lines::EventEnd) -> Action {
        let Some(first) = ev.first_data.clone() else {
            return Action::Keep;
        };
        // One data line (vLLM's case): its value is the data, read in place. Several: joined, as a client reads them.
        let joined;
        let (data, at) = if ev.data_lines == 1 {
            (&event[first.clone()], Some(first.start))
        } else {
            joined = lines::joined_data(event);
            (&joined[..], None)
        };
        #[cfg(test)]
        self.seen.push(data.to_vec());
        if data.trim_ascii() == b"[DONE]" {
            self.done = true;
            return Action::Keep;
        }
        self.data_events += 1;
        if self.dialect != Dialect::OpenAi {
            // Passed through as they are; only read.
            if self.events.read(data) {
                self.done = true;
            }
            return Action::Keep;
        }
        let Some(field) = usage::usage_field(data) else {
            // No usage, or not a usage object as vLLM writes it: left alone, and the last good one stands.
            return Action::Keep;
        };
        self.usage_json.clear();
        self.usage_json.extend_from_slice(&data[field.value]);
        if usage::has_empty_choices(data) {
            // The final usage chunk: all or nothing.
            if self.strip_usage_chunk {
                Action::Drop
            } else {
                Action::Keep
            }
        } else if self.strip_usage_field {
            match at {
                Some(at) => Action::Cut(at + field.cut.start, at + field.cut.end),
                None => {
                    let mut cut = data[..field.cut.start].to_vec();
                    cut.extend_from_slice(&data[field.cut.end..]);
                    Action::Replace(lines::with_data(event, &cut))
                }
            }
        } else {
            Action::Keep
        }
    }
}

/// The output for a chunk that differs from the input from `pos` on: what came before, with room for the rest
/// (and for a model name longer than the served one) so that it is allocated once.
/// The output of a chunk whose bytes change at `pos`: what came before, in `spare`'s buffer (taken) or a new one.
fn rewritten_from(spare: &mut Vec<u8>, data: &[u8], pos: usize) -> Vec<u8> {
    let mut out = std::mem::take(spare);
    out.reserve(data.len() + 64);
    out.extend_from_slice(&data[..pos]);
    out
}

/// Usage reported in pieces: Anthropic's `message_start` (input), `message_delta` (output so far, cumulative);
/// the Responses API's `response.completed` (both). Events are parsed whole (serde, into these few fields): these
/// APIs are not the measured path. Until the final count, each text or argument delta counts as one output token,
/// so a stream cut short is billed what went by (vLLM writes one token per delta).
#[derive(Debug, Default)]
struct EventUsage {
    input: Option<u64>,
    output: Option<u64>,
    /// The final output count went by.
    settled: bool,
    deltas: u64,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    message: Option<Holder>,
    response: Option<Holder>,
    usage: Option<PartialUsage>,
}

#[derive(Deserialize)]
struct Holder {
    usage: Option<PartialUsage>,
}

#[derive(Deserialize)]
struct PartialUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
}

impl EventUsage {
    /// Reads one event's data; true when it ends the answer (`message_stop`, `response.completed`, ...).
    fn read(&mut self, data: &[u8]) -> bool {
        let Ok(ev) = serde_json::from_slice::<Event<'_>>(data) else {
            return false;
        };
        let kind = ev.kind.as_deref().unwrap_or("");
        let usage = ev
            .usage
            .or(ev.message.and_then(|m| m.usage))
            .or(ev.response.and_then(|r| r.usage));
        if let Some(u) = usage {
            if let Some(i) = u.input_tokens {
                let cached = u
                    .cache_creation_input_tokens
                    .saturating_add(u.cache_read_input_tokens);
                self.input = Some(i.saturating_add(cached));
            }
            if let Some(o) = u.output_tokens {
                self.output = Some(o);
                self.settled |= kind != "message_start";
            }
        }
        match kind {
            "content_block_delta"
            | "response.output_text.delta"
            | "response.function_call_arguments.delta"
            | "response.reasoning_text.delta" => {
                self.deltas += 1;
                false
            }
            "message_stop" | "response.completed" | "response.incomplete" | "response.failed" => {
                true
            }
            _ => false,
        }
    }

    fn usage(&self) -> Option<Usage> {
        if self.input.is_none() && self.output.is_none() && self.deltas == 0 {
            return None;
        }
        let output = self.output.unwrap_or(0);
        Some(Usage {
            prompt_tokens: self.input.unwrap_or(0),
            completion_tokens: if self.settled {
                output
            } else {
                output.max(self.deltas)
            },
        })
    }
}

/// `event: <name>` with one JSON `data:` line.
fn named_event(name: &str, data: &serde_json::Value) -> Vec<u8> {
    let mut out = format!("event: {name}\ndata: ").into_bytes();
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}

/// The usage of a whole (non-streamed) response body. vLLM writes `usage` last, so it is looked for from the end
/// first; a body laid out differently is parsed whole.
pub fn usage_of_body(body: &[u8]) -> Option<Usage> {
    if let Some((_, v)) = usage::last_key_value(body, usage::usage_name(), body.len()) {
        if let Some(len) = usage::object_len(&body[v..]) {
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
