//! Turns a chat or completion request into a generation plan: validates it as vLLM does
//! (lengths, `n`, `max_tokens`), generates every choice up front (the text is a pure
//! function of the request) and sizes the scheduler demand.

use crate::engine::Demand;
use crate::error::ApiError;
use crate::faults::FaultPlan;
use crate::generator::{self, Completion, FinishReason, GenParams, ToolCall};
use crate::openai::output::{Rules, Shape};
use crate::openai::types::{ChatMessage, Sampling};
use crate::state::{AppState, ResolvedModel};
use crate::tokenizer;

/// One prompt, rendered to text.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// The prompt text (for chat: the rendered template).
    pub text: String,
    /// Its token count.
    pub tokens: u32,
}

impl Prompt {
    /// A prompt from text.
    pub fn new(text: String) -> Self {
        let tokens = tokenizer::count(&text).min(u32::MAX as usize) as u32;
        Self { text, tokens }
    }
}

/// Renders chat messages with a ChatML-like template (the simulator's "chat template"):
/// `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then `<|im_start|>assistant\n`.
pub fn render_chat(messages: &[ChatMessage]) -> String {
    let mut out = String::new();
    for m in messages {
        out.push_str("<|im_start|>");
        out.push_str(&m.role);
        out.push('\n');
        out.push_str(&m.text());
        if let Some(calls) = &m.tool_calls {
            out.push_str(&calls.to_string());
        }
        out.push_str("<|im_end|>\n");
    }
    out.push_str("<|im_start|>assistant\n");
    out
}

/// Renders a conversation with the chat template: the tools the model is shown (as JSON, when there are any), a
/// system prompt, then each (role, text) turn, and the assistant's turn to answer. What the Messages and Responses
/// APIs send is rendered this way; chat messages by [`render_chat`] after the same tools header.
pub fn render_turns<'a>(
    tools: Option<&[serde_json::Value]>,
    system: Option<&str>,
    turns: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut out = tools_header(tools);
    let mut turn = |role: &str, text: &str| {
        out.push_str("<|im_start|>");
        out.push_str(role);
        out.push('\n');
        out.push_str(text);
        out.push_str("<|im_end|>\n");
    };
    if let Some(system) = system {
        turn("system", system);
    }
    for (role, text) in turns {
        turn(role, text);
    }
    out.push_str("<|im_start|>assistant\n");
    out
}

/// The template's tools block (the model is shown its tools, so they count as prompt tokens); empty without tools.
pub fn tools_header(tools: Option<&[serde_json::Value]>) -> String {
    match tools {
        Some(t) if !t.is_empty() => format!(
            "<|im_start|>tools\n{}<|im_end|>\n",
            serde_json::Value::from(t.to_vec())
        ),
        _ => String::new(),
    }
}

/// Everything needed to run and answer one request.
#[derive(Debug)]
pub struct Plan {
    /// Model name for responses and LoRA accounting.
    pub model: ResolvedModel,
    /// Total prompt tokens (all prompts).
    pub prompt_tokens: u32,
    /// The choices, indexed `prompt_index * n + i`.
    pub choices: Vec<Completion>,
    /// The `max_tokens` limit applied.
    pub max_tokens: u32,
    /// What to ask the scheduler for.
    pub demand: Demand,
    /// Faults this request will suffer.
    pub faults: FaultPlan,
    /// Stream the answer.
    pub stream: bool,
    /// Send a final usage chunk.
    pub include_usage: bool,
    /// Put usage on every chunk.
    pub continuous_usage: bool,
    /// The chained block hashes of each prompt, for the prefix cache (empty when it is off).
    pub prefix_blocks: Vec<Vec<u64>>,
}

impl Plan {
    /// Total generated tokens.
    pub fn completion_tokens(&self) -> u32 {
        self.choices.iter().map(Completion::num_tokens).sum()
    }
}

/// Validates `sampling` against `prompts` and builds the plan.
pub fn build(
    state: &AppState,
    model: ResolvedModel,
    prompts: Vec<Prompt>,
    sampling: Sampling,
    max_tokens: Option<i64>,
    rules: Option<&Rules>,
) -> Result<Plan, ApiError> {
    let cfg = &state.config;
    let max_len = cfg.max_model_len;
    let stream = sampling.stream.unwrap_or(false);
    if sampling.stream_options.is_some() && !stream {
        return Err(ApiError::bad_request(
            "Stream options can only be defined when `stream=True`.",
            Some("stream_options"),
        ));
    }
    let n = sampling.n.unwrap_or(1);
    if n < 1 {
        return Err(ApiError::bad_request(
            format!("n must be at least 1, got {n}."),
            Some("n"),
        ));
    }
    if n > 128 {
        return Err(ApiError::bad_request(
            format!("n must be at most 128, got {n}."),
            Some("n"),
        ));
    }
    let n = n as u32;
    if let Some(t) = sampling.temperature {
        if t.is_nan() || t < 0.0 {
            return Err(ApiError::bad_request(
                format!("temperature must be non-negative, got {t}."),
                Some("temperature"),
            ));
        }
    }
    if let Some(m) = max_tokens {
        if m < 1 {
            return Err(ApiError::bad_request(
                format!("max_tokens must be at least 1, got {m}."),
                Some("max_tokens"),
            ));
        }
    }
    let min_tokens = sampling.min_tokens.unwrap_or(0);
    if min_tokens < 0 {
        return Err(ApiError::bad_request(
            format!("min_tokens must be greater than or equal to 0, got {min_tokens}."),
            Some("min_tokens"),
        ));
    }
    let stop = sampling.stop.map(|s| s.into_vec()).unwrap_or_default();
    let seed = sampling.seed.unwrap_or(0) as u64;
    let greedy = sampling.temperature == Some(0.0);

    let mut choices = Vec::with_capacity(prompts.len() * n as usize);
    let mut prompt_tokens: u64 = 0;
    let mut reserve: u64 = 0;
    let mut applied_max = 0;
    let mut prefix_blocks = Vec::new();
    for p in &prompts {
        if p.tokens >= max_len {
            return Err(ApiError::bad_request(
                format!(
                    "This model's maximum context length is {max_len} tokens. However, your request has {} input tokens. \
                     Please reduce the length of the input messages.",
                    p.tokens
                ),
                Some("input_tokens"),
            ));
        }
        let room = max_len - p.tokens;
        let limit = match max_tokens {
            Some(m) if m as u64 > u64::from(room) => {
                return Err(ApiError::bad_request(
                    format!(
                        "'max_tokens' or 'max_completion_tokens' is too large: {m}. This model's maximum context length is \
                         {max_len} tokens and your request has {} input tokens ({m} > {max_len} - {}).",
                        p.tokens, p.tokens
                    ),
                    Some("max_tokens"),
                ));
            }
            Some(m) => m as u32,
            None => room,
        };
        applied_max = applied_max.max(limit);
        if cfg.prefix_caching {
            prefix_blocks.push(crate::prefix_cache::block_hashes(&p.text));
        }
        let prompt_hash = generator::prompt_hash(&p.text);
        prompt_tokens += u64::from(p.tokens);
        reserve += u64::from(p.tokens);
        for i in 0..n {
            let choice = if greedy { 0 } else { i };
            let shape = rules.map_or(Shape::Text, |r| {
                r.shape(generator::choice_seed(prompt_hash, seed, choice))
            });
            let c = match shape {
                Shape::Text => generator::generate(&GenParams {
                    prompt_hash,
                    seed,
                    choice,
                    max_tokens: limit,
                    natural: (cfg.min_output_tokens, cfg.max_output_tokens),
                    min_tokens: min_tokens.min(i64::from(limit)) as u32,
                    ignore_eos: sampling.ignore_eos,
                    stop: &stop,
                    include_stop_str: sampling.include_stop_str_in_output,
                }),
                shape => structured(
                    shape,
                    generator::choice_seed(prompt_hash, seed, choice),
                    limit,
                ),
            };
            reserve += u64::from(c.num_tokens());
            choices.push(c);
        }
    }
    let include_usage = sampling
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage.unwrap_or(true));
    let continuous_usage = sampling
        .stream_options
        .as_ref()
        .is_some_and(|o| o.continuous_usage_stats.unwrap_or(false));
    Ok(Plan {
        model,
        prompt_tokens: prompt_tokens.min(u64::from(u32::MAX)) as u32,
        demand: Demand {
            seqs: choices.len() as u32,
            prompt_tokens,
            reserve_tokens: reserve,
            priority: sampling.priority.unwrap_or(0),
        },
        choices,
        max_tokens: applied_max,
        faults: state.faults.plan(),
        stream,
        include_usage,
        continuous_usage,
        prefix_blocks,
    })
}

/// A choice whose text is JSON or one of a list: a structured answer or a tool call's arguments.
fn structured(shape: Shape, seed: u64, max_tokens: u32) -> Completion {
    use crate::structured::{any_object, instance};
    match shape {
        Shape::Text => Completion::of_text(String::new(), max_tokens, FinishReason::Stop),
        Shape::Json(schema) => {
            let v = schema.map_or_else(|| any_object(seed), |s| instance(&s, seed));
            Completion::of_text(v.to_string(), max_tokens, FinishReason::Stop)
        }
        Shape::OneOf(options) => {
            let pick = match options.len() {
                0 => String::new(),
                n => options[crate::rng::SplitMix64::new(seed).below(n as u64) as usize].clone(),
            };
            Completion::of_text(pick, max_tokens, FinishReason::Stop)
        }
        Shape::Call {
            name,
            parameters,
            forced,
        } => {
            let finish = if forced {
                FinishReason::Stop
            } else {
                FinishReason::ToolCalls
            };
            let args = instance(&parameters, seed).to_string();
            let mut c = Completion::of_text(args, max_tokens, finish);
            c.tool_call = Some(ToolCall {
                id: format!("chatcmpl-tool-{}", crate::rng::random_uuid_hex()),
                name,
            });
            c
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;
    use crate::openai::types::StopParam;

    fn state() -> std::sync::Arc<AppState> {
        let mut c = SimConfig::new("m").zero_latency();
        c.max_model_len = 100;
        AppState::new(c)
    }

    fn base() -> ResolvedModel {
        ResolvedModel {
            response_name: "m".into(),
            lora: None,
        }
    }

    #[test]
    fn prompt_too_long_is_400() {
        let s = state();
        let e = build(
            &s,
            base(),
            vec![Prompt::new("word ".repeat(200))],
            Sampling::default(),
            None,
            None,
        )
        .expect_err("too long");
        assert_eq!(e.status.as_u16(), 400);
        assert!(
            e.message.contains("maximum context length is 100 tokens"),
            "{}",
            e.message
        );
    }

    #[test]
    fn max_tokens_too_large_is_400() {
        let s = state();
        let e = build(
            &s,
            base(),
            vec![Prompt::new("hi".into())],
            Sampling::default(),
            Some(500),
            None,
        )
        .expect_err("too large");
        assert!(
            e.message
                .contains("'max_tokens' or 'max_completion_tokens' is too large: 500"),
            "{}",
            e.message
        );
    }

    #[test]
    fn n_and_usage() {
        let s = state();
        let sampling = Sampling {
            n: Some(3),
            stop: Some(StopParam::One("zzz".into())),
            ..Sampling::default()
        };
        let p = build(
            &s,
            base(),
            vec![Prompt::new("Hello there".into())],
            sampling,
            Some(10),
            None,
        )
        .expect("plan");
        assert_eq!(p.choices.len(), 3);
        assert_eq!(p.prompt_tokens, 4, "Hell|o| the|re");
        assert!(p.choices.iter().all(|c| c.num_tokens() <= 10));
        assert_eq!(p.demand.seqs, 3);
        assert_eq!(
            p.demand.reserve_tokens,
            4 + u64::from(p.completion_tokens())
        );
        assert_ne!(p.choices[0].text, p.choices[1].text);
        let greedy = Sampling {
            n: Some(2),
            temperature: Some(0.0),
            ..Sampling::default()
        };
        let p = build(
            &s,
            base(),
            vec![Prompt::new("Hello there".into())],
            greedy,
            Some(10),
            None,
        )
        .expect("plan");
        assert_eq!(p.choices[0].text, p.choices[1].text);
    }

    #[test]
    fn bad_params_are_400() {
        let s = state();
        for sampling in [
            Sampling {
                n: Some(0),
                ..Sampling::default()
            },
            Sampling {
                temperature: Some(-1.0),
                ..Sampling::default()
            },
            Sampling {
                stream_options: Some(Default::default()),
                ..Sampling::default()
            },
        ] {
            let e = build(
                &s,
                base(),
                vec![Prompt::new("x".into())],
                sampling,
                None,
                None,
            )
            .expect_err("rejected");
            assert_eq!(e.status.as_u16(), 400);
        }
        assert!(build(
            &s,
            base(),
            vec![Prompt::new("x".into())],
            Sampling::default(),
            Some(0),
            None
        )
        .is_err());
    }

    #[test]
    fn chat_template_counts_every_message() {
        let msgs: Vec<ChatMessage> = serde_json::from_str(
            r#"[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]"#,
        )
        .expect("json");
        let text = render_chat(&msgs);
        assert_eq!(text, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
        assert!(Prompt::new(text).tokens > 10);
    }
}
