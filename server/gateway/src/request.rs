//! Reading a client's JSON body and writing the one we send upstream.
//!
//! The body is parsed once into its top-level fields, each kept as borrowed raw JSON: the gateway reads the few
//! fields it needs (model, stream, token caps, the prompt's size) and writes every other field back byte for
//! byte, so nothing below the top level is re-serialised.
//!
//! Only fields a client may set reach the engine ([`client_may_send`]: OpenAI's and vLLM's request and sampling
//! parameters). Anything else is refused with a 400 naming it, so a client cannot set the engine's own knobs
//! (`priority`, `request_id`, `kv_transfer_params`, LoRA, chat templates...): on a shared engine those would let
//! one tenant jump the queue or reach into another's work. The gateway itself sets `priority` from the plan.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// The three generation endpoints the gateway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    /// vLLM's `POST /tokenize` (a prompt or chat messages to token ids), which clients call to count tokens.
    Tokenize,
    /// vLLM's `POST /detokenize` (token ids back to text).
    Detokenize,
    /// vLLM's `POST /v1/rerank` (reranker models: documents ordered by relevance to a query; also `/v2/rerank`).
    Rerank,
    /// vLLM's `POST /v1/score` (cross-encoder scores of text pairs).
    Score,
    /// Anthropic's Messages API (`POST /v1/messages`), which vLLM serves: Anthropic's SDKs and coding agents.
    Messages,
    /// OpenAI's Responses API (`POST /v1/responses`), which vLLM serves.
    Responses,
}

/// The API family of an endpoint: how its streams report usage and how its errors are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI's chat and completions (and vLLM's own endpoints): `usage` with `prompt_tokens`, on the last chunk.
    OpenAi,
    /// Anthropic's Messages: `input_tokens` in `message_start`, `output_tokens` in `message_delta`; errors as
    /// `{"type": "error", "error": {"type", "message"}}`.
    Anthropic,
    /// OpenAI's Responses: `usage` with `input_tokens` and `output_tokens` in `response.completed`.
    Responses,
}

impl Endpoint {
    /// Every endpoint, in declaration order, so `ALL[e as usize] == e` (tables indexed by endpoint rely on it).
    pub const ALL: [Endpoint; 9] = [
        Self::Chat,
        Self::Completions,
        Self::Embeddings,
        Self::Tokenize,
        Self::Detokenize,
        Self::Rerank,
        Self::Score,
        Self::Messages,
        Self::Responses,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Self::Chat => "/v1/chat/completions",
            Self::Completions => "/v1/completions",
            Self::Embeddings => "/v1/embeddings",
            Self::Tokenize => "/tokenize",
            Self::Detokenize => "/detokenize",
            Self::Rerank => "/v1/rerank",
            Self::Score => "/v1/score",
            Self::Messages => "/v1/messages",
            Self::Responses => "/v1/responses",
        }
    }

    pub fn dialect(self) -> Dialect {
        match self {
            Self::Messages => Dialect::Anthropic,
            Self::Responses => Dialect::Responses,
            _ => Dialect::OpenAi,
        }
    }

    /// Whether requests here generate nothing and cost no tokens: they count against the requests-per-minute
    /// and concurrency limits (they use an engine) but reserve and are charged no tokens, and are metered with
    /// zero tokens.
    pub fn is_free(self) -> bool {
        matches!(self, Self::Tokenize | Self::Detokenize)
    }

    /// Whether the engine generates tokens here (chat and completions); the others only read their input.
    pub fn generates(self) -> bool {
        matches!(
            self,
            Self::Chat | Self::Completions | Self::Messages | Self::Responses
        )
    }

    /// Fields only this endpoint takes, beyond [`client_may_send`]'s.
    fn takes(self, field: &str) -> bool {
        match self {
            Self::Tokenize => field == "return_token_strs",
            Self::Detokenize => field == "tokens",
            Self::Rerank => matches!(field, "query" | "documents" | "top_n" | "return_documents"),
            Self::Score => matches!(field, "text_1" | "text_2"),
            // Anthropic's Messages fields beyond OpenAI's names.
            Self::Messages => matches!(
                field,
                "system" | "stop_sequences" | "metadata" | "thinking" | "service_tier"
            ),
            // OpenAI's Responses fields beyond chat's.
            Self::Responses => matches!(
                field,
                "instructions"
                    | "max_output_tokens"
                    | "previous_response_id"
                    | "store"
                    | "text"
                    | "reasoning"
                    | "include"
                    | "metadata"
                    | "truncation"
                    | "service_tier"
                    | "max_tool_calls"
                    | "prompt_cache_key"
                    | "safety_identifier"
                    | "background"
            ),
            _ => false,
        }
    }

    /// The short name stored in usage records and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::Tokenize => "tokenize",
            Self::Detokenize => "detokenize",
            Self::Rerank => "rerank",
            Self::Score => "score",
            Self::Messages => "messages",
            Self::Responses => "responses",
        }
    }

    /// The field that caps the completion tokens: `max_tokens` (Anthropic's too), or the Responses API's.
    fn cap_field(self) -> &'static str {
        match self {
            Self::Responses => "max_output_tokens",
            _ => "max_tokens",
        }
    }

    /// The field holding what the engine reads as its prompt.
    /// (`/tokenize` takes `messages` instead of a `prompt` too.)
    fn prompt_field(self) -> &'static str {
        match self {
            Self::Chat | Self::Messages => "messages",
            Self::Completions | Self::Tokenize => "prompt",
            Self::Embeddings => "input",
            Self::Detokenize => "tokens",
            Self::Rerank => "documents",
            Self::Score => "text_2",
            Self::Responses => "input",
        }
    }
}

/// Why a body is refused, with the field to blame (OpenAI's `param`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub message: String,
    pub param: Option<Cow<'static, str>>,
}

impl Invalid {
    fn field(param: &'static str, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: Some(Cow::Borrowed(param)),
        }
    }
}

/// Whether a client may send this top-level field: the request and sampling parameters of OpenAI's and vLLM's
/// chat, completions and embeddings APIs. Generous with what shapes an answer (sampling, stops, logprobs,
/// structured output, tools, chat-template switches); strict with what steers the engine itself, which
/// [`ENGINE_FIELDS`] names. A `match` on the name: no allocation, no hashing.
pub fn client_may_send(field: &str) -> bool {
    matches!(
        field,
        // What to run.
        "model" | "messages" | "prompt" | "input" | "suffix" | "user"
        // Streaming.
        | "stream" | "stream_options"
        // How much.
        | "max_tokens" | "max_completion_tokens" | "min_tokens" | "n" | "best_of"
        // Sampling.
        | "temperature" | "top_p" | "top_k" | "min_p" | "seed"
        | "presence_penalty" | "frequency_penalty" | "repetition_penalty" | "length_penalty"
        | "use_beam_search" | "logit_bias" | "allowed_token_ids" | "bad_words"
        // Stopping.
        | "stop" | "stop_token_ids" | "ignore_eos" | "include_stop_str_in_output"
        // What the answer shows.
        | "logprobs" | "top_logprobs" | "prompt_logprobs" | "echo" | "skip_special_tokens"
        | "spaces_between_special_tokens" | "return_tokens_as_token_ids"
        // Structured output.
        | "response_format" | "structured_outputs" | "guided_json" | "guided_regex" | "guided_choice"
        | "guided_grammar" | "guided_whitespace_pattern" | "structural_tag"
        // Tools and reasoning.
        | "tools" | "tool_choice" | "parallel_tool_calls" | "reasoning_effort" | "include_reasoning"
        // The chat template's switches (not the template itself).
        | "add_generation_prompt" | "continue_final_message" | "add_special_tokens" | "documents"
        | "chat_template_kwargs" | "truncate_prompt_tokens"
        // Embeddings.
        | "encoding_format" | "dimensions"
    )
}

/// Fields that steer the engine rather than the answer: refused with a message saying why. `priority` is the
/// gateway's, from the plan's scheduling tier.
pub const ENGINE_FIELDS: &[&str] = &[
    "priority",
    "request_id",
    "lora_request",
    "kv_transfer_params",
    "cache_salt",
    "vllm_xargs",
    "logits_processors",
    "chat_template",
    "mm_processor_kwargs",
    "guided_decoding_backend",
    "prompt_embeds",
];

/// The 400 for a field a client may not send.
fn refused_field(field: &str) -> Invalid {
    let message = if ENGINE_FIELDS.contains(&field) {
        if field == "priority" {
            "`priority` is set by the gateway from your plan's scheduling tier; remove it from the request.".to_string()
        } else {
            format!("`{field}` is an engine setting that clients may not send; remove it from the request.")
        }
    } else {
        format!("Unrecognized request argument supplied: {field}")
    };
    Invalid {
        message,
        param: Some(Cow::Owned(field.chars().take(100).collect())),
    }
}

/// A parsed request body: its fields in order, borrowed from the input, and what the gateway needs to know.
#[derive(Debug)]
pub struct ClientRequest<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    pub endpoint: Endpoint,
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// The client asked for the final usage chunk (`stream_options.include_usage`).
    pub wants_usage_chunk: bool,
    /// The client asked for usage on every chunk (`stream_options.continuous_usage_stats`).
    pub wants_continuous_usage: bool,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
    /// Choices asked for (`n`), at least 1.
    pub choices: u64,
    /// What replica choice keeps together (`affinity::prefix_key` of the prompt's JSON), for endpoints that
    /// generate.
    pub prefix_key: Option<u64>,
    /// Bytes of raw JSON in the prompt field, and in the fields the chat template adds to it (`tools`, `system`,
    /// `instructions`): the basis of the prompt-token estimate.
    pub prompt_bytes: usize,
}

/// Choices beyond this are refused: `n` multiplies the reservation, so it must stay meaningful.
pub const MAX_CHOICES: u64 = 128;

/// Parses `body` as a request to `endpoint`. Never panics, whatever the input.
pub fn parse(endpoint: Endpoint, body: &[u8]) -> Result<ClientRequest<'_>, Invalid> {
    let fields = match serde_json::from_slice::<Fields<'_>>(body) {
        Ok(f) => f.0,
        Err(e) => {
            return Err(Invalid {
                message: if e.is_data() || e.is_syntax() || e.is_eof() {
                    format!("The request body is not a valid JSON object: {e}.")
                } else {
                    format!("The request body could not be read: {e}.")
                },
                param: None,
            })
        }
    };
    if let Some((key, _)) = fields
        .iter()
        .find(|(k, _)| !client_may_send(k) && !endpoint.takes(k))
    {
        return Err(refused_field(key));
    }
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    // The template's switches may not carry a template of their own (vLLM reads one from them too).
    if let Some(raw) = get("chat_template_kwargs").filter(|r| r.get() != "null") {
        let kwargs = serde_json::from_str::<Fields<'_>>(raw.get()).map_err(|_| {
            Invalid::field(
                "chat_template_kwargs",
                "`chat_template_kwargs` must be an object.",
            )
        })?;
        if kwargs.0.iter().any(|(k, _)| k == "chat_template") {
            return Err(refused_field("chat_template"));
        }
    }

    let model = match get("model") {
        None => {
            return Err(Invalid::field(
                "model",
                "You must provide a model parameter.",
            ))
        }
        Some(raw) => match serde_json::from_str::<Cow<'_, str>>(raw.get()) {
            Ok(m) if !m.is_empty() => m,
            _ => {
                return Err(Invalid::field(
                    "model",
                    "`model` must be a non-empty string.",
                ))
            }
        },
    };
    let stream = match endpoint {
        Endpoint::Embeddings
        | Endpoint::Tokenize
        | Endpoint::Detokenize
        | Endpoint::Rerank
        | Endpoint::Score => false,
        _ => optional::<bool>(get("stream"), "stream", "`stream` must be a boolean.")?
            .unwrap_or(false),
    };
    let (wants_usage_chunk, wants_continuous_usage) = match get("stream_options") {
        None => (false, false),
        Some(raw) if raw.get() == "null" => (false, false),
        Some(raw) => {
            let o: StreamOptions = serde_json::from_str(raw.get()).map_err(|_| {
                Invalid::field(
                    "stream_options",
                    "`stream_options` must be an object with boolean `include_usage` and `continuous_usage_stats`.",
                )
            })?;
            // Like vLLM: `stream_options` given means include_usage unless it says otherwise.
            (
                o.include_usage.unwrap_or(true),
                o.continuous_usage_stats.unwrap_or(false),
            )
        }
    };
    let token_cap = |name: &'static str| {
        optional::<u64>(
            get(name),
            name,
            "must be a non-negative integer that fits in 64 bits.",
        )
    };
    let max_tokens = match endpoint {
        Endpoint::Responses => token_cap("max_output_tokens")?,
        _ => token_cap("max_completion_tokens")?.or(token_cap("max_tokens")?),
    };
    let choices = optional::<u64>(get("n"), "n", "`n` must be a positive integer.")?.unwrap_or(1);
    if choices == 0 || choices > MAX_CHOICES {
        return Err(Invalid::field(
            "n",
            format!("`n` must be between 1 and {MAX_CHOICES}."),
        ));
    }
    let prompt_field = endpoint.prompt_field();
    let prompt = get(prompt_field)
        .filter(|raw| raw.get() != "null")
        .or_else(|| {
            (endpoint == Endpoint::Tokenize)
                .then(|| get("messages"))
                .flatten()
                .filter(|raw| raw.get() != "null")
        })
        .ok_or_else(|| match endpoint {
            Endpoint::Tokenize => {
                Invalid::field("prompt", "You must provide `prompt` or `messages`.")
            }
            _ => Invalid::field(prompt_field, format!("You must provide `{prompt_field}`.")),
        })?;
    if matches!(endpoint, Endpoint::Chat | Endpoint::Messages) && !prompt.get().starts_with('[') {
        return Err(Invalid::field("messages", "`messages` must be an array."));
    }
    Ok(ClientRequest {
        prefix_key: endpoint
            .generates()
            .then(|| crate::affinity::prefix_key(prompt.get().as_bytes()))
            .flatten(),
        // What else the chat template puts before the answer counts too: tool definitions, Anthropic's `system`,
        // the Responses API's `instructions`.
        prompt_bytes: ["tools", "system", "instructions"]
            .iter()
            .filter_map(|f| get(f))
            .fold(prompt.get().len(), |n, raw| n + raw.get().len()),
        fields,
        endpoint,
        model,
        stream,
        wants_usage_chunk,
        wants_continuous_usage,
        max_tokens,
        choices,
    })
}

/// A field that may be absent or null, else must decode as `T`.
fn optional<T: for<'de> Deserialize<'de>>(
    raw: Option<&RawValue>,
    param: &'static str,
    message: &str,
) -> Result<Option<T>, Invalid> {
    match raw {
        None => Ok(None),
        Some(r) if r.get() == "null" => Ok(None),
        Some(r) => serde_json::from_str(r.get()).map(Some).map_err(|_| {
            Invalid::field(param, message.replace("must", &format!("`{param}` must")))
        }),
    }
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
    continuous_usage_stats: Option<bool>,
}

impl ClientRequest<'_> {
    /// The body for the engine: `model` replaced by the engine's served name; for streams, usage asked on every
    /// chunk (so the gateway knows the exact count even when the stream is cut); the completion capped at
    /// `budget` tokens per choice (what was reserved) when the client set no cap or a higher one; and vLLM's
    /// `priority` from the plan when it has one (clients cannot send their own: [`parse`] refuses it). Every other
    /// field unchanged.
    pub fn upstream_body(
        &self,
        served_model: &str,
        budget: Option<u64>,
        priority: Option<i32>,
    ) -> Vec<u8> {
        use std::io::Write;
        // The client's own cap stands when it fits the budget; otherwise one `max_tokens` replaces both caps (vLLM
        // reads `max_completion_tokens` first, so it must not be left above the budget).
        let cap = budget.filter(|b| self.max_tokens.is_none_or(|m| m > *b));
        // Only OpenAI's chat and completions take `stream_options`; the other APIs report usage in their streams
        // anyway (Anthropic's `message_delta`, the Responses API's `response.completed`).
        let usage_options = self.stream && self.endpoint.dialect() == Dialect::OpenAi;
        let mut out = Vec::with_capacity(self.size_hint() + served_model.len() + 160);
        out.push(b'{');
        let mut first = true;
        let mut comma = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        for (key, raw) in &self.fields {
            if usage_options && key == "stream_options" {
                continue;
            }
            if cap.is_some()
                && matches!(
                    &**key,
                    "max_tokens" | "max_completion_tokens" | "max_output_tokens"
                )
            {
                continue;
            }
            comma(&mut out);
            write_json_str(&mut out, key);
            out.push(b':');
            if key == "model" {
                write_json_str(&mut out, served_model);
            } else {
                out.extend_from_slice(raw.get().as_bytes());
            }
        }
        if usage_options {
            comma(&mut out);
            out.extend_from_slice(br#""stream_options":{"#);
            // The client's other options pass through; the two usage flags are the gateway's.
            let client_options = self
                .fields
                .iter()
                .find(|(k, _)| k == "stream_options")
                .and_then(|(_, raw)| serde_json::from_str::<Fields<'_>>(raw.get()).ok());
            for (key, raw) in client_options.iter().flat_map(|f| &f.0) {
                if key != "include_usage" && key != "continuous_usage_stats" {
                    write_json_str(&mut out, key);
                    out.push(b':');
                    out.extend_from_slice(raw.get().as_bytes());
                    out.push(b',');
                }
            }
            out.extend_from_slice(br#""include_usage":true,"continuous_usage_stats":true}"#);
        }
        // Writing into a Vec cannot fail.
        if let Some(cap) = cap {
            comma(&mut out);
            let _ = write!(out, "\"{}\":{cap}", self.endpoint.cap_field());
        }
        if let Some(priority) = priority {
            comma(&mut out);
            let _ = write!(out, "\"priority\":{priority}");
        }
        out.push(b'}');
        out
    }

    fn size_hint(&self) -> usize {
        self.fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum()
    }
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The top-level fields of a JSON object, in order, values left raw. Duplicate keys are refused: the gateway and
/// the engine might otherwise read different values of one field (say, `model`).
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields: Vec<(Cow<'a, str>, &'a RawValue)> = Vec::with_capacity(16);
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    if fields.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_index_their_tables() {
        for (i, e) in Endpoint::ALL.into_iter().enumerate() {
            assert_eq!(e as usize, i);
        }
    }
    use serde_json::{json, Value};

    fn chat(body: &str) -> Result<ClientRequest<'_>, Invalid> {
        parse(Endpoint::Chat, body.as_bytes())
    }

    #[test]
    fn tools_and_system_prompts_count_toward_the_prompt() {
        let tools = r#"[{"type":"function","function":{"name":"f","parameters":{}}}]"#;
        let body = format!(r#"{{"model":"m","messages":[],"tools":{tools}}}"#);
        let r = chat(&body).unwrap();
        assert_eq!(r.prompt_bytes, 2 + tools.len());
        let r = parse(
            Endpoint::Messages,
            br#"{"model":"m","system":"Be brief.","messages":[]}"#,
        )
        .unwrap();
        assert_eq!(r.prompt_bytes, 2 + "\"Be brief.\"".len());
    }

    #[test]
    fn anthropic_messages_and_responses_keep_their_own_fields_and_caps() {
        let body = r#"{"model":"m","system":"Be brief.","messages":[{"role":"user","content":"hi"}],
            "max_tokens":500,"stream":true,"stop_sequences":["x"],"tools":[]}"#;
        let r = parse(Endpoint::Messages, body.as_bytes()).unwrap();
        assert_eq!((r.max_tokens, r.stream), (Some(500), true));
        let out: Value =
            serde_json::from_slice(&r.upstream_body("served", Some(100), None)).unwrap();
        // No `stream_options` (Anthropic's streams carry usage anyway); the budget caps `max_tokens`.
        assert_eq!(out["max_tokens"], 100);
        assert!(out.get("stream_options").is_none(), "{out}");
        assert_eq!(out["system"], "Be brief.");
        assert!(parse(Endpoint::Messages, br#"{"model":"m","messages":"hi"}"#).is_err());

        let body = r#"{"model":"m","input":"hi","instructions":"Be brief.","max_output_tokens":50,
            "text":{"format":{"type":"json_object"}},"stream":true}"#;
        let r = parse(Endpoint::Responses, body.as_bytes()).unwrap();
        assert_eq!(r.max_tokens, Some(50));
        let out: Value =
            serde_json::from_slice(&r.upstream_body("served", Some(20), None)).unwrap();
        assert_eq!(out["max_output_tokens"], 20);
        assert!(
            out.get("max_tokens").is_none() && out.get("stream_options").is_none(),
            "{out}"
        );
        // Each API's own fields stay its own.
        assert!(parse(
            Endpoint::Chat,
            br#"{"model":"m","messages":[],"instructions":"x"}"#
        )
        .is_err());
        assert!(parse(
            Endpoint::Responses,
            br#"{"model":"m","input":"x","system":"x"}"#
        )
        .is_err());
        assert!(
            parse(Endpoint::Responses, br#"{"model":"m"}"#).is_err(),
            "input is required"
        );
    }

    #[test]
    fn reads_what_the_gateway_needs_and_keeps_the_rest() {
        let body = r#"{"model":"llama","messages":[{"role":"user","content":"hi"}],"max_tokens":7,
            "n":2,"guided_json":{"deep":[1,2,{"a":null}]},"temperature":0.5}"#;
        let r = chat(body).unwrap();
        assert_eq!(r.model, "llama");
        assert_eq!(r.max_tokens, Some(7));
        assert_eq!(r.choices, 2);
        assert!(!r.stream);
        let out: Value =
            serde_json::from_slice(&r.upstream_body("meta/llama-3", None, None)).unwrap();
        let mut expected: Value = serde_json::from_str(body).unwrap();
        expected["model"] = json!("meta/llama-3");
        assert_eq!(out, expected);
    }

    #[test]
    fn streams_always_ask_the_engine_for_usage() {
        let r = chat(r#"{"model":"m","messages":[],"stream":true}"#).unwrap();
        assert!(r.stream && !r.wants_usage_chunk && !r.wants_continuous_usage);
        let out: Value = serde_json::from_slice(&r.upstream_body("m", None, None)).unwrap();
        assert_eq!(
            out["stream_options"],
            json!({"include_usage": true, "continuous_usage_stats": true})
        );

        let r = chat(
            r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        assert!(r.wants_usage_chunk && !r.wants_continuous_usage);
        let body = r.upstream_body("m", None, None);
        let text = std::str::from_utf8(&body).unwrap();
        assert_eq!(text.matches("stream_options").count(), 1, "{text}");
    }

    #[test]
    fn the_clients_other_stream_options_are_kept() {
        let r = chat(
            r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":false,"x_vendor":{"a":[1]},"continuous_usage_stats":false}}"#,
        )
        .unwrap();
        assert!(!r.wants_usage_chunk && !r.wants_continuous_usage);
        let out: Value = serde_json::from_slice(&r.upstream_body("m", None, None)).unwrap();
        assert_eq!(
            out["stream_options"],
            json!({"x_vendor": {"a": [1]}, "include_usage": true, "continuous_usage_stats": true})
        );
    }

    #[test]
    fn the_completion_is_capped_at_the_reserved_budget() {
        let upstream = |body: &str, budget| -> Value {
            let r = chat(body).unwrap();
            serde_json::from_slice(&r.upstream_body("m", budget, None)).unwrap()
        };
        // No cap from the client: the budget is sent.
        let out = upstream(
            r#"{"model":"m","messages":[],"response_format":{"max_tokens":1}}"#,
            Some(64),
        );
        assert_eq!(
            out,
            json!({"model":"m","messages":[],"response_format":{"max_tokens":1},"max_tokens":64})
        );
        // A higher cap (either name) is replaced by the budget.
        let out = upstream(r#"{"model":"m","messages":[],"max_tokens":5000}"#, Some(64));
        assert_eq!(out, json!({"model":"m","messages":[],"max_tokens":64}));
        let out = upstream(
            r#"{"model":"m","messages":[],"max_tokens":10,"max_completion_tokens":5000}"#,
            Some(64),
        );
        assert_eq!(out, json!({"model":"m","messages":[],"max_tokens":64}));
        // A cap within the budget is kept as the client wrote it.
        let body = r#"{"model":"m","messages":[],"max_completion_tokens":  20}"#;
        let r = chat(body).unwrap();
        let text = String::from_utf8(r.upstream_body("m", Some(64), None)).unwrap();
        assert_eq!(
            text,
            r#"{"model":"m","messages":[],"max_completion_tokens":20}"#
        );
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let r = chat(r#"{"model":"m","messages":[],"max_tokens":5,"max_completion_tokens":9}"#)
            .unwrap();
        assert_eq!(r.max_tokens, Some(9));
        let r = chat(r#"{"model":"m","messages":[],"max_tokens":null}"#).unwrap();
        assert_eq!(r.max_tokens, None);
    }

    #[test]
    fn escaped_keys_and_model_names_round_trip() {
        let body = r#"{"mod\u0065l":"a\"b","messages":[],"us\u0065r":"we\"ird"}"#;
        let r = chat(body).unwrap();
        assert_eq!(r.model, "a\"b");
        let out: Value = serde_json::from_slice(&r.upstream_body("x\\y", None, None)).unwrap();
        assert_eq!(
            out,
            json!({"model": "x\\y", "messages": [], "user": "we\"ird"})
        );
        // An escaped spelling of a refused field is refused too.
        let e = chat(r#"{"model":"m","messages":[],"pri\u006fr\u0069ty":-100}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("priority"));
    }

    #[test]
    fn each_endpoint_requires_its_prompt_field() {
        assert_eq!(
            chat(r#"{"model":"m"}"#).unwrap_err().param.as_deref(),
            Some("messages")
        );
        assert_eq!(
            chat(r#"{"model":"m","messages":"hi"}"#)
                .unwrap_err()
                .param
                .as_deref(),
            Some("messages")
        );
        let c = parse(Endpoint::Completions, br#"{"model":"m","prompt":"hello"}"#).unwrap();
        assert_eq!(c.prompt_bytes, "\"hello\"".len());
        let e = parse(Endpoint::Embeddings, br#"{"model":"m","input":null}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input"));
        // Embeddings never stream, whatever the body says.
        let e = parse(
            Endpoint::Embeddings,
            br#"{"model":"m","input":"x","stream":true}"#,
        )
        .unwrap();
        assert!(!e.stream);
    }

    #[test]
    fn adversarial_bodies_get_clear_errors_not_panics() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", None),
            ("null", None),
            ("[]", None),
            ("\"model\"", None),
            ("{", None),
            ("{\"model\":\"m\",", None),
            ("{\"model\":\"m\"} trailing", None),
            (
                "{\"model\":\"m\",\"model\":\"other\",\"messages\":[]}",
                None,
            ),
            ("{\"model\":1,\"messages\":[]}", Some("model")),
            ("{\"model\":\"\",\"messages\":[]}", Some("model")),
            ("{\"messages\":[]}", Some("model")),
            (
                "{\"model\":\"m\",\"messages\":[],\"stream\":\"yes\"}",
                Some("stream"),
            ),
            (
                "{\"model\":\"m\",\"messages\":[],\"max_tokens\":-1}",
                Some("max_tokens"),
            ),
            (
                "{\"model\":\"m\",\"messages\":[],\"max_tokens\":1e400}",
                None,
            ),
            (
                "{\"model\":\"m\",\"messages\":[],\"max_tokens\":18446744073709551616}",
                Some("max_tokens"),
            ),
            ("{\"model\":\"m\",\"messages\":[],\"n\":0}", Some("n")),
            ("{\"model\":\"m\",\"messages\":[],\"n\":100000}", Some("n")),
            (
                "{\"model\":\"m\",\"messages\":[],\"stream_options\":5}",
                Some("stream_options"),
            ),
            (
                "{\"model\":\"m\",\"messages\":[],\"stream_options\":{\"include_usage\":\"y\"}}",
                Some("stream_options"),
            ),
            ("{\"model\":\"\u{0}\"}", None),
            ("\u{feff}{}", None),
        ];
        for (body, param) in cases {
            match chat(body) {
                Ok(r) => {
                    // The only acceptable successes still produce valid JSON upstream.
                    let out = r.upstream_body("s", Some(8), None);
                    assert!(serde_json::from_slice::<Value>(&out).is_ok(), "{body}");
                }
                Err(e) => {
                    assert!(!e.message.is_empty(), "{body}");
                    if param.is_some() {
                        assert_eq!(e.param.as_deref(), *param, "{body}: {}", e.message);
                    }
                }
            }
        }
        // Deep nesting below the top level is skipped over as raw JSON (no recursion, no stack overflow) and passed
        // on unchanged for the engine to judge.
        let deep = format!(
            "{{\"model\":\"m\",\"messages\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let r = chat(&deep).unwrap();
        assert_eq!(r.prompt_bytes, 200_000);
        assert_eq!(r.upstream_body("m", None, None).len(), deep.len());
        // Invalid UTF-8 is a 400 too.
        assert!(parse(Endpoint::Chat, b"{\"model\":\"\xff\",\"messages\":[]}").is_err());
    }

    #[test]
    fn only_fields_a_client_may_send_reach_the_engine() {
        // Engine settings are refused with a message that names the field and says why.
        for field in ENGINE_FIELDS {
            let body = format!(r#"{{"model":"m","messages":[],"{field}":1}}"#);
            let e = chat(&body).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(*field), "{field}");
            assert!(e.message.contains(field), "{}", e.message);
            assert!(!client_may_send(field));
        }
        let e = chat(r#"{"model":"m","messages":[],"priority":-1000}"#).unwrap_err();
        assert!(e.message.contains("plan"), "{}", e.message);
        // Anything unknown is refused, in OpenAI's words, on every endpoint.
        let e = chat(r#"{"model":"m","messages":[],"x_custom":{"deep":1}}"#).unwrap_err();
        assert_eq!(
            e.message,
            "Unrecognized request argument supplied: x_custom"
        );
        assert_eq!(e.param.as_deref(), Some("x_custom"));
        for endpoint in Endpoint::ALL {
            let body = format!(
                r#"{{"model":"m","{}":"x","request_id":"mine"}}"#,
                endpoint.prompt_field()
            );
            let e = parse(endpoint, body.as_bytes()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some("request_id"), "{endpoint:?}");
        }
        // A chat template cannot come in through the template's switches either.
        let e =
            chat(r#"{"model":"m","messages":[],"chat_template_kwargs":{"chat_template":"{{x}}"}}"#)
                .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("chat_template"));
        assert!(chat(
            r#"{"model":"m","messages":[],"chat_template_kwargs":{"enable_thinking":false}}"#
        )
        .is_ok());
        assert_eq!(
            chat(r#"{"model":"m","messages":[],"chat_template_kwargs":7}"#)
                .unwrap_err()
                .param
                .as_deref(),
            Some("chat_template_kwargs")
        );
        // The sampling parameters clients use pass, all at once, unchanged.
        let generous = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"top_p":0.9,
            "top_k":40,"min_p":0.05,"n":2,"stop":["\n"],"seed":7,"presence_penalty":0.1,"frequency_penalty":0.2,
            "repetition_penalty":1.1,"logprobs":true,"top_logprobs":3,"logit_bias":{"42":-5},"user":"u",
            "response_format":{"type":"json_object"},"tools":[],"tool_choice":"auto","parallel_tool_calls":false,
            "max_completion_tokens":9,"min_tokens":1,"ignore_eos":false,"skip_special_tokens":true,
            "spaces_between_special_tokens":true,"include_stop_str_in_output":false,"guided_json":{"type":"object"},
            "structured_outputs":{"choice":["a","b"]},"best_of":2,"echo":false,"stop_token_ids":[2],
            "chat_template_kwargs":{"enable_thinking":false},"reasoning_effort":"low","stream":true,
            "stream_options":{"include_usage":true}}"#;
        let r = chat(generous).unwrap_or_else(|e| panic!("{}", e.message));
        let out: Value = serde_json::from_slice(&r.upstream_body("m", None, None)).unwrap();
        let sent: Value = serde_json::from_str(generous).unwrap();
        for (k, v) in sent.as_object().unwrap() {
            if k != "stream_options" {
                assert_eq!(&out[k], v, "{k}");
            }
        }
        let c = parse(
            Endpoint::Completions,
            br#"{"model":"m","prompt":"a","suffix":"b","echo":true,"logprobs":2,"best_of":3}"#,
        );
        assert!(c.is_ok());
        let e = parse(
            Endpoint::Embeddings,
            br#"{"model":"m","input":["a"],"encoding_format":"base64","dimensions":8,"user":"u"}"#,
        );
        assert!(e.is_ok());
    }

    #[test]
    fn the_plans_priority_is_written_for_the_engine() {
        let r = chat(r#"{"model":"m","messages":[]}"#).unwrap();
        let text = String::from_utf8(r.upstream_body("m", Some(8), Some(-3))).unwrap();
        assert_eq!(
            text,
            r#"{"model":"m","messages":[],"max_tokens":8,"priority":-3}"#
        );
        let text = String::from_utf8(r.upstream_body("m", None, None)).unwrap();
        assert!(!text.contains("priority"), "tier 0 sends none: {text}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = chat(r#"{"model":"a","messages":[],"model":"b"}"#).unwrap_err();
        assert!(e.message.contains("duplicate"), "{}", e.message);
    }
}
