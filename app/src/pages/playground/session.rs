//! The playground's state and everything about it that needs no browser: the conversation and its settings (kept
//! in the browser's storage), the request bodies, reading the streamed answer (server-sent events), errors in a
//! person's words, and the conversation as code. Plain functions, tested on the host.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tollgate_domain::catalog::Task;

/// Where the conversation is kept in the browser (`localStorage`).
pub const STORAGE_KEY: &str = "tollgate.playground.v1";

/// Sampling settings as typed into the form (empty: the engine's default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub temperature: String,
    pub top_p: String,
    pub max_tokens: String,
    /// One stop sequence per line.
    pub stop: String,
    pub seed: String,
    /// Ask for a JSON object (`response_format`), chat models only.
    pub json: bool,
}

/// Replies are capped at this many tokens unless the form says otherwise: a client that sends no cap gets the
/// gateway's reservation (4096), more than a small model's context leaves room for.
pub const DEFAULT_MAX_TOKENS: &str = "512";

impl Default for Settings {
    fn default() -> Self {
        Self {
            temperature: String::new(),
            top_p: String::new(),
            max_tokens: DEFAULT_MAX_TOKENS.into(),
            stop: String::new(),
            seed: String::new(),
            json: false,
        }
    }
}

impl Settings {
    /// The OpenAI fields these settings add to a request, or what is wrong with one of them.
    pub fn fields(&self, task: Task) -> Result<Map<String, Value>, String> {
        let mut m = Map::new();
        if let Some(t) = number(&self.temperature, "Temperature", 0.0, 2.0)? {
            m.insert("temperature".into(), json!(t));
        }
        if let Some(p) = number(&self.top_p, "Top P", 0.0, 1.0)? {
            m.insert("top_p".into(), json!(p));
        }
        if let Some(n) = whole(&self.max_tokens, "Max tokens", 1, 1_000_000)? {
            m.insert("max_tokens".into(), json!(n));
        }
        if let Some(s) = whole(&self.seed, "Seed", 0, i64::MAX)? {
            m.insert("seed".into(), json!(s));
        }
        let stops: Vec<&str> = self.stop.lines().filter(|l| !l.is_empty()).collect();
        if stops.len() > 4 {
            return Err("Up to 4 stop sequences, one per line.".into());
        }
        if !stops.is_empty() {
            m.insert("stop".into(), json!(stops));
        }
        if self.json && task == Task::Chat {
            m.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Ok(m)
    }
}

fn number(text: &str, what: &str, min: f64, max: f64) -> Result<Option<f64>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    match t.parse::<f64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
        _ => Err(format!("{what} must be a number from {min} to {max}.")),
    }
}

fn whole(text: &str, what: &str, min: i64, max: i64) -> Result<Option<i64>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    match t.parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
        _ => Err(format!("{what} must be a whole number of at least {min}.")),
    }
}

/// How a reply ended (or that it has not yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyState {
    /// Not asked (the other side of a turn sent before comparing).
    #[default]
    Idle,
    Waiting,
    Streaming,
    Done,
    Stopped,
    Failed,
}

/// What the gateway's answer told about one reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub ttft_ms: Option<f64>,
    /// From the first token to the last.
    pub decode_ms: Option<f64>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub cost: Option<f64>,
    pub finish_reason: Option<String>,
    /// The gateway's `x-ratelimit-*` headers: (remaining, limit).
    pub requests_left: Option<(String, String)>,
    pub tokens_left: Option<(String, String)>,
    /// The monthly token quota (`x-ratelimit-*-tokens-month`): (remaining, limit).
    pub month_left: Option<(String, String)>,
}

impl Stats {
    pub fn tokens_per_second(&self) -> Option<f64> {
        let n = self.completion_tokens? as f64;
        let ms = self.decode_ms?;
        (ms > 0.0 && n > 1.0).then(|| (n - 1.0) * 1000.0 / ms)
    }

    /// One line for under the reply.
    pub fn line(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = self.ttft_ms {
            parts.push(format!("TTFT {t:.0} ms"));
        }
        if let Some(r) = self.tokens_per_second() {
            parts.push(format!("{r:.1} tokens/s"));
        }
        if let (Some(p), Some(c)) = (self.prompt_tokens, self.completion_tokens) {
            parts.push(format!("{p} prompt + {c} completion tokens"));
        }
        if let Some(c) = self.cost {
            parts.push(format!("cost ${c:.6}"));
        }
        if let Some((left, limit)) = &self.requests_left {
            parts.push(format!("{left}/{limit} requests left this minute"));
        }
        if let Some((left, limit)) = &self.tokens_left {
            parts.push(format!("{left}/{limit} tokens left this minute"));
        }
        if let Some((left, limit)) = &self.month_left {
            parts.push(format!("{left}/{limit} tokens left this month"));
        }
        parts.join(" · ")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reply {
    pub text: String,
    pub state: ReplyState,
    /// What went wrong, in words (Failed), or what is happening (a retry's countdown).
    pub note: String,
    pub stats: Stats,
}

/// One user message and the reply of each side (one side unless comparing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Turn {
    pub user: String,
    pub replies: [Reply; 2],
}

/// Everything the page keeps across reloads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Saved {
    /// The chosen subscription of each side.
    pub picks: [String; 2],
    pub compare: bool,
    pub system: String,
    pub settings: [Settings; 2],
    pub turns: Vec<Turn>,
}

/// The playground endpoint for a task.
pub fn endpoint(task: Task) -> &'static str {
    match task {
        Task::Chat => "chat",
        Task::Completion => "completions",
        Task::Embeddings => "embeddings",
    }
}

/// The OpenAI path for a task, for the copied code.
fn api_path(task: Task) -> &'static str {
    match task {
        Task::Chat => "/chat/completions",
        Task::Completion => "/completions",
        Task::Embeddings => "/embeddings",
    }
}

/// The chat messages for `side` up to and including turn `upto`: the system prompt, then each turn's user
/// message and (before `upto`) that side's reply.
pub fn messages(system: &str, turns: &[Turn], upto: usize, side: usize) -> Vec<Value> {
    let mut out = Vec::new();
    if !system.trim().is_empty() {
        out.push(json!({"role": "system", "content": system}));
    }
    for (i, t) in turns.iter().enumerate().take(upto + 1) {
        out.push(json!({"role": "user", "content": t.user}));
        if i < upto {
            if let Some(r) = t.replies.get(side) {
                out.push(json!({"role": "assistant", "content": r.text}));
            }
        }
    }
    out
}

/// The request body for turn `upto` on `side`.
pub fn body(
    task: Task,
    model: &str,
    system: &str,
    turns: &[Turn],
    upto: usize,
    side: usize,
    settings: &Settings,
) -> Result<Value, String> {
    let mut m = Map::new();
    m.insert("model".into(), json!(model));
    let input = turns.get(upto).map(|t| t.user.as_str()).unwrap_or_default();
    match task {
        Task::Chat => {
            m.insert(
                "messages".into(),
                Value::Array(messages(system, turns, upto, side)),
            );
        }
        Task::Completion => {
            m.insert("prompt".into(), json!(input));
        }
        Task::Embeddings => {
            m.insert("input".into(), json!(input));
            return Ok(Value::Object(m));
        }
    }
    m.extend(settings.fields(task)?);
    m.insert("stream".into(), json!(true));
    m.insert("stream_options".into(), json!({"include_usage": true}));
    Ok(Value::Object(m))
}

/// What one server-sent event of a streamed answer carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    pub text: String,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub finish_reason: Option<String>,
    pub error: Option<String>,
    pub done: bool,
}

/// Splits a growing buffer of SSE bytes into complete events (separated by a blank line), leaving an incomplete
/// tail in the buffer. Each event is read as the JSON of its `data:` lines.
pub fn take_events(buffer: &mut Vec<u8>) -> Vec<Delta> {
    let mut out = Vec::new();
    while let Some((end, sep)) = find_blank_line(buffer) {
        let event: Vec<u8> = buffer.drain(..end + sep).collect();
        let text = String::from_utf8_lossy(&event[..end]);
        let data: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim_start)
            .collect();
        if !data.is_empty() {
            out.push(parse_data(&data.join("\n")));
        }
    }
    out
}

fn find_blank_line(b: &[u8]) -> Option<(usize, usize)> {
    (0..b.len()).find_map(|i| {
        if b[i..].starts_with(b"\n\n") {
            Some((i, 2))
        } else if b[i..].starts_with(b"\r\n\r\n") {
            Some((i, 4))
        } else {
            None
        }
    })
}

fn parse_data(data: &str) -> Delta {
    if data.trim() == "[DONE]" {
        return Delta {
            done: true,
            ..Delta::default()
        };
    }
    let Ok(v) = serde_json::from_str::<Value>(data) else {
        return Delta::default();
    };
    let choice = &v["choices"][0];
    let text = choice["delta"]["content"]
        .as_str()
        .or_else(|| choice["text"].as_str())
        .unwrap_or_default()
        .to_string();
    Delta {
        text,
        prompt_tokens: v["usage"]["prompt_tokens"].as_u64(),
        completion_tokens: v["usage"]["completion_tokens"].as_u64(),
        finish_reason: choice["finish_reason"].as_str().map(str::to_string),
        error: v["error"]["message"].as_str().map(str::to_string),
        done: false,
    }
}

/// An embeddings answer in a line: the vector's size and its first values.
pub fn describe_embedding(answer: &Value) -> Option<String> {
    let vector = answer["data"][0]["embedding"].as_array()?;
    let first: Vec<String> = vector
        .iter()
        .take(8)
        .filter_map(Value::as_f64)
        .map(|f| format!("{f:.4}"))
        .collect();
    Some(format!(
        "A vector of {} dimensions: [{}{}]",
        vector.len(),
        first.join(", "),
        if vector.len() > first.len() {
            ", ..."
        } else {
            ""
        }
    ))
}

/// A refused or failed call, as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub message: String,
    /// Retry by itself after this many seconds (a model that is starting).
    pub retry_in: Option<u32>,
}

/// Reads an error answer: its status, OpenAI error body and `Retry-After`.
pub fn failure(status: u16, body: &str, retry_after: Option<u32>) -> Failure {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = v["error"]["code"].as_str().unwrap_or_default();
    let said = v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("The server answered {status}."));
    let wait = retry_after.unwrap_or(5).max(1);
    match (status, code) {
        (429, "insufficient_quota") => Failure {
            message: format!("Quota exhausted: {said} It renews at the start of next month."),
            retry_in: None,
        },
        (429, _) => Failure {
            message: format!("Too many requests (429): {said} You can send again in {wait} s."),
            retry_in: None,
        },
        (503, "no_replica") if said.contains("starting") => Failure {
            message: format!("The model is warming up; retrying in {wait} s."),
            retry_in: Some(wait),
        },
        (503, "not_ready") => Failure {
            message: said,
            retry_in: Some(wait),
        },
        (s, _) if s >= 500 => Failure {
            message: format!("The engine failed ({s}): {said}"),
            retry_in: None,
        },
        _ => Failure {
            message: said,
            retry_in: None,
        },
    }
}

/// Which way of calling the API the copied code shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Curl,
    Python,
    JavaScript,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::Curl, Lang::Python, Lang::JavaScript];
    pub fn label(self) -> &'static str {
        match self {
            Lang::Curl => "curl",
            Lang::Python => "Python (openai)",
            Lang::JavaScript => "JavaScript (openai)",
        }
    }
}

/// The placeholder where the copied code wants a key: the playground never has one.
pub const KEY_PLACEHOLDER: &str = "YOUR_API_KEY";

/// The next request of the conversation (the messages so far plus the message being written) as code calling
/// `api_base` with a placeholder key, in `lang`.
pub fn snippet(lang: Lang, api_base: &str, task: Task, request: &Value) -> String {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    // The SDKs stream by an argument of their own; the copied code asks for the whole answer, simplest to read.
    let mut body = request.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("stream");
        m.remove("stream_options");
    }
    match lang {
        Lang::Curl => format!(
            "curl {api_base}{path} \\\n  -H \"Authorization: Bearer $TOLLGATE_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{json}'\n",
            path = api_path(task),
            json = pretty(&body).replace('\'', "'\\''"),
        ),
        Lang::Python => {
            let call = match task {
                Task::Chat => "client.chat.completions.create",
                Task::Completion => "client.completions.create",
                Task::Embeddings => "client.embeddings.create",
            };
            let args = body
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("    {k}={},", python_value(v, 1)))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            let show = match task {
                Task::Chat => "print(answer.choices[0].message.content)",
                Task::Completion => "print(answer.choices[0].text)",
                Task::Embeddings => "print(len(answer.data[0].embedding))",
            };
            format!(
                "from openai import OpenAI\n\nclient = OpenAI(base_url=\"{api_base}\", api_key=\"{KEY_PLACEHOLDER}\")\n\nanswer = {call}(\n{args}\n)\n{show}\n"
            )
        }
        Lang::JavaScript => {
            let call = match task {
                Task::Chat => "client.chat.completions.create",
                Task::Completion => "client.completions.create",
                Task::Embeddings => "client.embeddings.create",
            };
            let show = match task {
                Task::Chat => "console.log(answer.choices[0].message.content);",
                Task::Completion => "console.log(answer.choices[0].text);",
                Task::Embeddings => "console.log(answer.data[0].embedding.length);",
            };
            format!(
                "import OpenAI from \"openai\";\n\nconst client = new OpenAI({{ baseURL: \"{api_base}\", apiKey: \"{KEY_PLACEHOLDER}\" }});\n\nconst answer = await {call}({json});\n{show}\n",
                json = pretty(&body)
            )
        }
    }
}

/// A JSON value written as a Python literal (True/False/None), indented for a call's arguments.
fn python_value(v: &Value, depth: usize) -> String {
    let pad = "    ".repeat(depth + 1);
    let end = "    ".repeat(depth);
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Array(items) if items.is_empty() => "[]".into(),
        Value::Array(items) => format!(
            "[\n{}\n{end}]",
            items
                .iter()
                .map(|i| format!("{pad}{},", python_value(i, depth + 1)))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Object(m) => format!(
            "{{\n{}\n{end}}}",
            m.iter()
                .map(|(k, v)| format!(
                    "{pad}{}: {},",
                    serde_json::to_string(k).unwrap_or_default(),
                    python_value(v, depth + 1)
                ))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(user: &str, reply: &str) -> Turn {
        Turn {
            user: user.into(),
            replies: [
                Reply {
                    text: reply.into(),
                    ..Reply::default()
                },
                Reply {
                    text: format!("B: {reply}"),
                    ..Reply::default()
                },
            ],
        }
    }

    #[test]
    fn a_chat_body_carries_the_conversation_of_its_side_and_the_settings() {
        let turns = [turn("Hi", "Hello!"), turn("How are you?", "")];
        let settings = Settings {
            temperature: "0.7".into(),
            top_p: "".into(),
            max_tokens: "64".into(),
            stop: "END\n\nSTOP".into(),
            seed: "42".into(),
            json: true,
        };
        let b = body(Task::Chat, "m", "Be brief.", &turns, 1, 1, &settings).unwrap();
        let roles: Vec<&str> = b["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(
            b["messages"][2]["content"], "B: Hello!",
            "side B's own reply"
        );
        assert_eq!(b["temperature"], 0.7);
        assert_eq!(b["max_tokens"], 64);
        assert_eq!(b["stop"], json!(["END", "STOP"]));
        assert_eq!(b["seed"], 42);
        assert_eq!(b["response_format"]["type"], "json_object");
        assert_eq!(b["stream"], true);
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert!(b.get("top_p").is_none(), "empty settings are left out");
    }

    #[test]
    fn bad_settings_are_refused_in_words() {
        let bad = Settings {
            temperature: "hot".into(),
            ..Settings::default()
        };
        assert!(bad.fields(Task::Chat).unwrap_err().contains("Temperature"));
        let bad = Settings {
            max_tokens: "0".into(),
            ..Settings::default()
        };
        assert!(bad.fields(Task::Chat).unwrap_err().contains("Max tokens"));
        let json_on_completion = Settings {
            json: true,
            max_tokens: String::new(),
            ..Settings::default()
        };
        assert!(json_on_completion
            .fields(Task::Completion)
            .unwrap()
            .is_empty());
        assert_eq!(
            Settings::default().fields(Task::Chat).unwrap()["max_tokens"],
            512
        );
    }

    #[test]
    fn completions_and_embeddings_send_their_own_fields() {
        let turns = [turn("Once upon a time", "")];
        let b = body(
            Task::Completion,
            "m",
            "",
            &turns,
            0,
            0,
            &Settings::default(),
        )
        .unwrap();
        assert_eq!(b["prompt"], "Once upon a time");
        assert!(b.get("messages").is_none());
        let b = body(
            Task::Embeddings,
            "e",
            "",
            &turns,
            0,
            0,
            &Settings::default(),
        )
        .unwrap();
        assert_eq!(b, json!({"model": "e", "input": "Once upon a time"}));
    }

    #[test]
    fn events_are_read_as_they_complete() {
        let mut buf = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"con".to_vec();
        let first = take_events(&mut buf);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].text, "Hel");
        buf.extend_from_slice(b"tent\":\"lo\"},\"finish_reason\":\"stop\"}]}\r\n\r\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n");
        let rest = take_events(&mut buf);
        assert_eq!(rest.len(), 3);
        assert_eq!(rest[0].text, "lo");
        assert_eq!(rest[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            (rest[1].prompt_tokens, rest[1].completion_tokens),
            (Some(5), Some(2))
        );
        assert!(rest[2].done);
        assert!(buf.is_empty());
        let mut completion = b"data: {\"choices\":[{\"text\":\" there\"}]}\n\n".to_vec();
        assert_eq!(take_events(&mut completion)[0].text, " there");
        let mut error = b"data: {\"error\":{\"message\":\"engine died\"}}\n\n".to_vec();
        assert_eq!(
            take_events(&mut error)[0].error.as_deref(),
            Some("engine died")
        );
    }

    #[test]
    fn errors_are_told_as_a_person_needs_them() {
        let body = |code: &str, message: &str| {
            json!({"error": {"code": code, "message": message}}).to_string()
        };
        let f = failure(
            429,
            &body(
                "rate_limit_exceeded",
                "Rate limit reached for requests per minute. Retry in 42s.",
            ),
            Some(42),
        );
        assert!(
            f.message.contains("429") && f.message.contains("42 s"),
            "{}",
            f.message
        );
        assert_eq!(f.retry_in, None);
        let f = failure(
            429,
            &body(
                "insufficient_quota",
                "You exceeded your subscription's monthly token quota.",
            ),
            None,
        );
        assert!(f.message.starts_with("Quota exhausted"));
        let f = failure(
            503,
            &body(
                "no_replica",
                "The model `m` is starting; retry in a few seconds.",
            ),
            Some(5),
        );
        assert_eq!(f.retry_in, Some(5));
        assert!(f.message.contains("warming up"));
        let f = failure(
            502,
            &body(
                "upstream_unavailable",
                "The model's engines could not be reached.",
            ),
            None,
        );
        assert!(f.message.starts_with("The engine failed (502)"));
        let f = failure(404, "not json", None);
        assert_eq!(f.message, "The server answered 404.");
    }

    #[test]
    fn embeddings_show_their_size_and_first_values() {
        let answer = json!({"data": [{"embedding": [0.5, -0.25, 0.125]}]});
        assert_eq!(
            describe_embedding(&answer).unwrap(),
            "A vector of 3 dimensions: [0.5000, -0.2500, 0.1250]"
        );
    }

    #[test]
    fn code_names_this_server_and_a_placeholder_key() {
        let turns = [turn("It's \"quoted\"", "")];
        let settings = Settings {
            temperature: "0.5".into(),
            json: true,
            ..Settings::default()
        };
        let request = body(Task::Chat, "llama", "", &turns, 0, 0, &settings).unwrap();
        let base = "https://portal.example/v1";
        let curl = snippet(Lang::Curl, base, Task::Chat, &request);
        assert!(curl.starts_with("curl https://portal.example/v1/chat/completions"));
        assert!(
            curl.contains("It'\\''s"),
            "single quotes survive the shell: {curl}"
        );
        assert!(!curl.contains("stream"), "{curl}");
        let py = snippet(Lang::Python, base, Task::Chat, &request);
        assert!(py.contains("base_url=\"https://portal.example/v1\""));
        assert!(py.contains(KEY_PLACEHOLDER));
        assert!(py.contains("temperature=0.5,"));
        assert!(py.contains("\"type\": \"json_object\","), "{py}");
        let js = snippet(Lang::JavaScript, base, Task::Chat, &request);
        assert!(js.contains("baseURL: \"https://portal.example/v1\""));
        assert!(js.contains("client.chat.completions.create({"));
    }

    #[test]
    fn stats_read_in_one_line() {
        let s = Stats {
            ttft_ms: Some(120.0),
            decode_ms: Some(1000.0),
            prompt_tokens: Some(10),
            completion_tokens: Some(51),
            cost: Some(0.0000112),
            finish_reason: None,
            requests_left: Some(("2".into(), "3".into())),
            tokens_left: None,
            month_left: Some(("9000".into(), "10000".into())),
        };
        assert_eq!(
            s.line(),
            "TTFT 120 ms · 50.0 tokens/s · 10 prompt + 51 completion tokens · cost $0.000011 · 2/3 requests left this minute · 9000/10000 tokens left this month"
        );
    }

    #[test]
    fn a_saved_conversation_reads_back() {
        let saved = Saved {
            picks: ["sub_a".into(), "".into()],
            system: "sys".into(),
            turns: vec![turn("Hi", "Hello")],
            ..Saved::default()
        };
        let text = serde_json::to_string(&saved).unwrap();
        assert_eq!(serde_json::from_str::<Saved>(&text).unwrap(), saved);
        assert_eq!(
            serde_json::from_str::<Saved>("{}").unwrap(),
            Saved::default()
        );
    }
}
