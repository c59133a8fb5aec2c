//! Request bodies of the OpenAI-compatible endpoints, as vLLM accepts them.
//!
//! Only the fields the simulator acts on are named; every other field is accepted and
//! ignored, as vLLM's `OpenAIBaseModel` (extra = "allow") does. Bodies are parsed by hand
//! from bytes (see [`parse_body`]) so that malformed JSON gets vLLM's 400 error body.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// `stop`: one string or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StopParam {
    /// A single stop string.
    One(String),
    /// Several stop strings.
    Many(Vec<String>),
}

impl StopParam {
    /// As a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StopParam::One(s) => vec![s],
            StopParam::Many(v) => v,
        }
    }
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a final usage chunk (vLLM defaults this to true when `stream_options` is given).
    pub include_usage: Option<bool>,
    /// Put usage on every chunk.
    pub continuous_usage_stats: Option<bool>,
}

/// Sampling fields shared by chat and completions.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Sampling {
    /// Requested model.
    pub model: Option<String>,
    /// Output limit.
    pub max_tokens: Option<i64>,
    /// Number of choices.
    pub n: Option<i64>,
    /// Stop strings.
    pub stop: Option<StopParam>,
    /// Seed of the deterministic generator.
    pub seed: Option<i64>,
    /// Temperature: 0 makes all `n` choices identical (greedy).
    pub temperature: Option<f64>,
    /// Stream as SSE.
    pub stream: Option<bool>,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// Generate `max_tokens` whatever the natural end.
    #[serde(default)]
    pub ignore_eos: bool,
    /// Do not end before this many tokens.
    pub min_tokens: Option<i64>,
    /// Keep the matched stop string in the text.
    #[serde(default)]
    pub include_stop_str_in_output: bool,
    /// vLLM's scheduling priority: lower runs earlier (default 0).
    pub priority: Option<i64>,
}

/// One chat message; `content` is a string, a list of parts, or null.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// The content.
    #[serde(default)]
    pub content: Option<Value>,
    /// An assistant's earlier tool calls (counted as prompt text).
    #[serde(default)]
    pub tool_calls: Option<Value>,
}

impl ChatMessage {
    /// The text of the content (text parts joined; other parts ignored).
    pub fn text(&self) -> String {
        match &self.content {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| match p {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(o) => o.get("text").and_then(Value::as_str),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    }
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Preferred over `max_tokens` when both are set.
    pub max_completion_tokens: Option<i64>,
    /// Functions the model may call: `[{"type": "function", "function": {"name", "parameters"}}]`.
    pub tools: Option<Vec<Value>>,
    /// `none`, `auto`, `required` or `{"type": "function", "function": {"name"}}`.
    pub tool_choice: Option<Value>,
    /// `{"type": "text" | "json_object" | "json_schema", "json_schema": {"name", "schema"}}`.
    pub response_format: Option<Value>,
    /// vLLM's structured outputs: `{"json": schema}` or `{"choice": [..]}`.
    pub structured_outputs: Option<Value>,
    /// vLLM's older spellings of the same.
    pub guided_json: Option<Value>,
    /// One of these strings.
    pub guided_choice: Option<Vec<String>>,
    /// The shared sampling fields.
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// `prompt` of `/v1/completions`: text, texts, token ids or lists of token ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PromptInput {
    /// One prompt.
    Text(String),
    /// A batch of prompts.
    Texts(Vec<String>),
    /// One prompt as token ids.
    Tokens(Vec<u32>),
    /// A batch of token-id prompts.
    TokenLists(Vec<Vec<u32>>),
}

impl PromptInput {
    /// The prompts as text (token ids are decoded with the simulator's tokenizer).
    pub fn into_texts(self) -> Vec<String> {
        match self {
            PromptInput::Text(s) => vec![s],
            PromptInput::Texts(v) => v,
            PromptInput::Tokens(ids) => vec![crate::tokenizer::decode(&ids)],
            PromptInput::TokenLists(l) => {
                l.iter().map(|ids| crate::tokenizer::decode(ids)).collect()
            }
        }
    }
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// The prompt(s).
    pub prompt: PromptInput,
    /// The shared sampling fields.
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// `input` of `/v1/embeddings`: same shapes as a completion prompt.
#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingRequest {
    /// Requested model.
    pub model: Option<String>,
    /// Text(s) or token ids to embed.
    pub input: PromptInput,
    /// `float` (default) or `base64` (little-endian f32, what the openai client asks for).
    pub encoding_format: Option<String>,
    /// Truncate vectors to this many dimensions (re-normalised).
    pub dimensions: Option<i64>,
}

/// `POST /tokenize`: either a prompt or chat messages.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenizeRequest {
    /// Requested model.
    pub model: Option<String>,
    /// Completion-style input.
    pub prompt: Option<String>,
    /// Chat-style input.
    pub messages: Option<Vec<ChatMessage>>,
    /// Also return the text of each token.
    #[serde(default)]
    pub return_token_strs: bool,
}

/// `POST /detokenize`.
#[derive(Debug, Clone, Deserialize)]
pub struct DetokenizeRequest {
    /// Requested model.
    pub model: Option<String>,
    /// Token ids.
    pub tokens: Vec<u32>,
}

/// `POST /v1/load_lora_adapter`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LoadLoraRequest {
    /// Adapter name.
    #[serde(default)]
    pub lora_name: String,
    /// Adapter path.
    #[serde(default)]
    pub lora_path: String,
    /// Replace an adapter already loaded under that name.
    #[serde(default)]
    pub load_inplace: bool,
}

/// `POST /v1/unload_lora_adapter`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UnloadLoraRequest {
    /// Adapter name.
    #[serde(default)]
    pub lora_name: String,
}

/// Parses a JSON body; any failure is vLLM's 400 validation error.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "JSON decode error"
        } else {
            "Request validation error"
        };
        ApiError::invalid_body(format!("{what}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_request_accepts_extra_fields_and_shapes() {
        let r: ChatRequest = parse_body(
            br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],
                "stop":"x","stream":true,"stream_options":{"include_usage":true},"top_p":0.9,"logit_bias":{}}"#,
        )
        .expect("parses");
        assert_eq!(r.messages[0].text(), "hi");
        assert_eq!(
            r.sampling.stop.map(StopParam::into_vec),
            Some(vec!["x".to_string()])
        );
        assert_eq!(r.sampling.stream, Some(true));
    }

    #[test]
    fn prompt_shapes() {
        let r: CompletionRequest = parse_body(br#"{"prompt":["a","b"]}"#).expect("parses");
        assert_eq!(r.prompt.into_texts(), vec!["a", "b"]);
        let r: CompletionRequest = parse_body(br#"{"prompt":[72, 105]}"#).expect("parses");
        assert_eq!(r.prompt.into_texts(), vec!["Hi"]);
    }

    #[test]
    fn malformed_json_is_a_400() {
        let e = parse_body::<ChatRequest>(b"{not json").expect_err("fails");
        assert_eq!(e.status.as_u16(), 400);
        let e = parse_body::<ChatRequest>(br#"{"model":"m"}"#).expect_err("fails");
        assert!(e.message.contains("messages"), "{}", e.message);
    }
}
