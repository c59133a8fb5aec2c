//! Command line: the shape of `vllm serve MODEL [options]`, plus `--sim-*` settings.
//!
//! vLLM's flags that matter are parsed; any other vLLM flag is accepted and ignored
//! (see [`normalize_args`]), so the fleet's local driver can start `tollgate-sim` with
//! exactly the arguments it would give vLLM. Every `--sim-*` flag also reads a
//! `TOLLGATE_SIM_*` environment variable.

use std::ffi::OsString;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::config::SimConfig;
use crate::faults::FaultSettings;
use crate::latency::LatencyModel;

const AFTER_HELP: &str = "\
BEHAVIOUR MODEL
  Tokens      Text is cut into pieces: a word is an optional leading space plus a run of
              letters/digits; any other character is a piece alone. Pieces longer than
              4 bytes are split into 4-byte chunks (never inside a character). One chunk =
              one token; its id is its UTF-8 bytes read as a big-endian integer.
              \"Hello, world!\" = Hell|o|,| wor|ld|! = 6 tokens. Chat prompts are rendered as
              <|im_start|>{role}\\n{content}<|im_end|>\\n per message + <|im_start|>assistant\\n.
  Text        Short sentences of 1-3 letter words (\"The red fox saw a big owl by the sea.\"),
              one token per word or punctuation mark; a pure function of (prompt, seed,
              choice index). temperature=0 makes all n choices equal. The answer ends
              (finish_reason \"stop\") at the first sentence end after a natural length drawn
              from [--sim-min-output-tokens, --sim-max-output-tokens]; max_tokens cuts it
              (\"length\"); ignore_eos always gives max_tokens; stop strings end it early.
  Latency     TTFT = queue wait + prompt_tokens / prefill rate. Each later token takes
              decode-ms + decode-ms-per-seq * (running sequences - 1). Zero = instant.
  Capacity    At most --max-num-seqs sequences run (n counts each); a request needs its
              prompt + planned output in the KV cache (--sim-kv-cache-tokens) and waits,
              FIFO, until both fit. vllm:kv_cache_usage_perc = tokens held / capacity.
  Start-up    /health answers 503 (other endpoints 503 errors) for --sim-load-time-s.
  Faults      At start with --sim-fault-* or at run time with
                POST /sim/faults {\"error_rate\":0.5,\"cut_after_tokens\":3,\"stall_ms\":1000,
                                  \"stall_after_tokens\":0,\"exit\":true,\"exit_code\":1}
              (the body replaces all settings; {} clears them). GET /sim/faults shows them,
              GET /sim/state shows the scheduler.

Unknown vLLM flags are accepted and ignored (--flag, --flag value, --flag=value). Put MODEL
first when an unknown boolean flag precedes it. The line \"tollgate-sim listening on
http://HOST:PORT\" is printed on stdout once bound (--port 0 picks a free port).";

/// Command-line arguments.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "tollgate-sim",
    version,
    about = "A vLLM-compatible inference engine simulator (no GPU). Usage mirrors `vllm serve MODEL`.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Model name or path, as `vllm serve MODEL` (reported as the model root).
    #[arg(value_name = "MODEL")]
    pub model_tag: Option<String>,
    /// Model name or path (alternative to the positional MODEL).
    #[arg(long)]
    pub model: Option<String>,
    /// Host to bind.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: String,
    /// Port to bind (0 = any free port; the listening line reports it).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Names the model is served under (the first is used in responses and metrics).
    #[arg(long, num_args = 1..)]
    pub served_model_name: Vec<String>,
    /// Context length in tokens (accepts 4096, 4k = 4000, 4K = 4096, auto).
    #[arg(long, default_value = "2048")]
    pub max_model_len: String,
    /// Most sequences running at once; more wait.
    #[arg(long, default_value_t = 256)]
    pub max_num_seqs: u32,
    /// Accepted for compatibility (alias -tp); no effect.
    #[arg(long, default_value_t = 1)]
    pub tensor_parallel_size: u32,
    /// Allow LoRA adapters (static via --lora-modules, dynamic via /v1/load_lora_adapter).
    #[arg(long)]
    pub enable_lora: bool,
    /// Reported as `max_lora` in vllm:lora_requests_info.
    #[arg(long, default_value_t = 1)]
    pub max_loras: u32,
    /// Accepted: automatic prefix caching is on by default, as in vLLM V1.
    #[arg(long)]
    pub enable_prefix_caching: bool,
    /// Turns automatic prefix caching off (every prompt is prefilled whole).
    #[arg(long)]
    pub no_enable_prefix_caching: bool,
    /// Adapters loaded at start: `name=path` (or vLLM's JSON form) ...
    #[arg(long, num_args = 1..)]
    pub lora_modules: Vec<String>,
    /// Require `Authorization: Bearer KEY` on /v1/* (as vLLM).
    #[arg(long, env = "VLLM_API_KEY")]
    pub api_key: Option<String>,

    /// Prefill speed in prompt tokens per second (0 = instant).
    #[arg(
        long,
        env = "TOLLGATE_SIM_PREFILL_TOKENS_PER_S",
        default_value_t = 5000.0
    )]
    pub sim_prefill_tokens_per_s: f64,
    /// Decode step time in ms with one running sequence.
    #[arg(long, env = "TOLLGATE_SIM_DECODE_MS", default_value_t = 20.0)]
    pub sim_decode_ms: f64,
    /// Extra decode step time in ms per additional running sequence.
    #[arg(long, env = "TOLLGATE_SIM_DECODE_MS_PER_SEQ", default_value_t = 0.15)]
    pub sim_decode_ms_per_seq: f64,
    /// Make prefill and decode instant (overrides the three flags above; load time is kept).
    #[arg(long, env = "TOLLGATE_SIM_ZERO_LATENCY")]
    pub sim_zero_latency: bool,
    /// KV-cache capacity in tokens.
    #[arg(long, env = "TOLLGATE_SIM_KV_CACHE_TOKENS", default_value_t = 131_072)]
    pub sim_kv_cache_tokens: u64,
    /// Simulated model-load time in seconds before /health answers 200.
    #[arg(long, env = "TOLLGATE_SIM_LOAD_TIME_S", default_value_t = 0.0)]
    pub sim_load_time_s: f64,
    /// Dimension of embedding vectors.
    #[arg(long, env = "TOLLGATE_SIM_EMBEDDING_DIM", default_value_t = 768)]
    pub sim_embedding_dim: usize,
    /// Shortest natural answer in tokens.
    #[arg(long, env = "TOLLGATE_SIM_MIN_OUTPUT_TOKENS", default_value_t = 16)]
    pub sim_min_output_tokens: u32,
    /// Longest natural answer in tokens (before finishing the sentence).
    #[arg(long, env = "TOLLGATE_SIM_MAX_OUTPUT_TOKENS", default_value_t = 128)]
    pub sim_max_output_tokens: u32,
    /// Fault: fraction of requests answered with HTTP 500.
    #[arg(long, env = "TOLLGATE_SIM_FAULT_ERROR_RATE", default_value_t = 0.0)]
    pub sim_fault_error_rate: f64,
    /// Fault: drop the connection after this many tokens.
    #[arg(long, env = "TOLLGATE_SIM_FAULT_CUT_AFTER_TOKENS")]
    pub sim_fault_cut_after_tokens: Option<u32>,
    /// Fault: pause each generation this many ms once.
    #[arg(long, env = "TOLLGATE_SIM_FAULT_STALL_MS", default_value_t = 0)]
    pub sim_fault_stall_ms: u64,
    /// Fault: tokens produced before the pause (0 = before the first token).
    #[arg(
        long,
        env = "TOLLGATE_SIM_FAULT_STALL_AFTER_TOKENS",
        default_value_t = 0
    )]
    pub sim_fault_stall_after_tokens: u32,
    /// Fault: exit with status 1 this many ms after start-up (a crash).
    #[arg(long, env = "TOLLGATE_SIM_FAULT_EXIT_AFTER_MS")]
    pub sim_fault_exit_after_ms: Option<u64>,
}

/// vLLM flags that take no value (so a following word is not eaten as their value).
const VLLM_BOOL_FLAGS: &[&str] = &[
    "enforce-eager",
    "trust-remote-code",
    "enable-prefix-caching",
    "enable-chunked-prefill",
    "disable-log-stats",
    "disable-log-requests",
    "enable-log-requests",
    "enable-log-outputs",
    "enable-auto-tool-choice",
    "disable-custom-all-reduce",
    "disable-sliding-window",
    "skip-tokenizer-init",
    "disable-frontend-multiprocessing",
    "enable-prompt-tokens-details",
    "enable-server-load-tracking",
    "enable-force-include-usage",
    "disable-fastapi-docs",
    "enable-request-id-headers",
    "disable-uvicorn-access-log",
    "enable-sleep-mode",
    "headless",
    "fully-sharded-loras",
    "enable-lora-bias",
    "enable-expert-parallel",
    "enable-eplb",
    "async-scheduling",
    "disable-async-output-proc",
    "enable-tokenizer-info-endpoint",
    "return-tokens-as-token-ids",
    "enable-reasoning",
    "disable-mm-preprocessor-cache",
    "allow-credentials",
    "use-v2-block-manager",
    "enable-dbo",
    "kv-sharing-fast-prefill",
    "enable-mfu-metrics",
    "disable-chunked-mm-input",
    "disable-cascade-attn",
];

fn looks_like_value(s: &str) -> bool {
    !s.starts_with('-') || s.parse::<f64>().is_ok()
}

/// Rewrites a `vllm serve` command line into one this parser accepts: drops a leading
/// `serve`, maps `-tp` to `--tensor-parallel-size`, and removes unknown flags with their
/// value (`--flag=value`, `--flag value`; known boolean vLLM flags and `--no-*` take none).
pub fn normalize_args<I, T>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.into().to_string_lossy().into_owned())
        .collect();
    let cmd = Cli::command();
    let known: Vec<(String, bool)> = cmd
        .get_arguments()
        .filter_map(|a| {
            a.get_long()
                .map(|l| (l.to_string(), a.get_action().takes_values()))
        })
        .chain([("help".to_string(), false), ("version".to_string(), false)])
        .collect();
    let mut out: Vec<OsString> = Vec::with_capacity(args.len());
    let mut it = args.into_iter().enumerate().peekable();
    while let Some((i, a)) = it.next() {
        if i == 0 {
            out.push(a.into());
            continue;
        }
        if i == 1 && a == "serve" {
            continue;
        }
        if a == "--" {
            out.push(a.into());
            out.extend(it.by_ref().map(|(_, a)| OsString::from(a)));
            break;
        }
        if a == "-tp" {
            out.push("--tensor-parallel-size".into());
            continue;
        }
        let (is_flag, name) = if let Some(rest) = a.strip_prefix("--") {
            (true, rest.split('=').next().unwrap_or(rest).to_string())
        } else if a.len() > 1 && a.starts_with('-') && a.parse::<f64>().is_err() {
            (true, String::new())
        } else {
            (false, String::new())
        };
        if !is_flag {
            out.push(a.into());
            continue;
        }
        if a.starts_with("--") && known.iter().any(|(k, _)| *k == name) {
            out.push(a.into());
            continue;
        }
        if matches!(a.as_str(), "-h" | "-V") {
            out.push(a.into());
            continue;
        }
        // Unknown flag: drop it, and its value if it has one.
        let takes_no_value =
            a.contains('=') || VLLM_BOOL_FLAGS.contains(&name.as_str()) || name.starts_with("no-");
        if !takes_no_value && it.peek().is_some_and(|(_, next)| looks_like_value(next)) {
            it.next();
        }
    }
    out
}

/// Parses `4096`, `4k` (4000), `4K` (4096), `1m`, `1M`, `auto`/`-1` (default 2048).
pub fn parse_len(s: &str) -> Result<u32, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("auto") || t == "-1" {
        return Ok(2048);
    }
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1000.0),
        Some('K') => (&t[..t.len() - 1], 1024.0),
        Some('m') => (&t[..t.len() - 1], 1_000_000.0),
        Some('M') => (&t[..t.len() - 1], 1_048_576.0),
        _ => (t, 1.0),
    };
    let v: f64 = num.parse().map_err(|_| format!("invalid length {s:?}"))?;
    let v = v * mult;
    if !(1.0..=f64::from(u32::MAX)).contains(&v) {
        return Err(format!("length out of range: {s:?}"));
    }
    Ok(v.round() as u32)
}

fn parse_lora_module(s: &str) -> Result<(String, String), String> {
    if s.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(s)
            .map_err(|e| format!("invalid --lora-modules JSON {s:?}: {e}"))?;
        let name = v.get("name").and_then(|x| x.as_str());
        let path = v.get("path").and_then(|x| x.as_str());
        return match (name, path) {
            (Some(n), Some(p)) => Ok((n.to_string(), p.to_string())),
            _ => Err(format!(
                "--lora-modules JSON needs \"name\" and \"path\": {s:?}"
            )),
        };
    }
    match s.split_once('=') {
        Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok((n.to_string(), p.to_string())),
        _ => Err(format!("--lora-modules expects name=path, got {s:?}")),
    }
}

fn secs(s: f64, what: &str) -> Result<Duration, String> {
    if s.is_finite() && s >= 0.0 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(format!(
            "{what} must be a non-negative number of seconds, got {s}"
        ))
    }
}

impl Cli {
    /// Parses the process arguments (after [`normalize_args`]).
    pub fn parse_vllm_style<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        Self::try_parse_from(normalize_args(args))
    }

    /// The address to bind.
    pub fn bind_addr(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The simulator settings these arguments describe.
    pub fn into_config(self) -> Result<SimConfig, String> {
        let model = self
            .model_tag
            .clone()
            .or(self.model.clone())
            .ok_or("a MODEL is required (positional or --model)")?;
        let mut c = SimConfig::new(model);
        if !self.served_model_name.is_empty() {
            c.served_model_names = self.served_model_name.clone();
        }
        c.max_model_len = parse_len(&self.max_model_len)?;
        c.max_num_seqs = self.max_num_seqs.max(1);
        c.tensor_parallel_size = self.tensor_parallel_size;
        c.enable_lora = self.enable_lora || !self.lora_modules.is_empty();
        c.max_loras = self.max_loras;
        c.lora_modules = self
            .lora_modules
            .iter()
            .map(|s| parse_lora_module(s))
            .collect::<Result<_, _>>()?;
        c.api_key = self.api_key.clone().filter(|k| !k.is_empty());
        c.latency = LatencyModel {
            prefill_tokens_per_s: self.sim_prefill_tokens_per_s,
            decode_ms: self.sim_decode_ms,
            decode_ms_per_seq: self.sim_decode_ms_per_seq,
        };
        c.kv_cache_tokens = self.sim_kv_cache_tokens;
        c.prefix_caching = !self.no_enable_prefix_caching;
        c.load_time = secs(self.sim_load_time_s, "--sim-load-time-s")?;
        c.embedding_dim = self.sim_embedding_dim.max(1);
        c.min_output_tokens = self.sim_min_output_tokens.max(1);
        c.max_output_tokens = self.sim_max_output_tokens.max(c.min_output_tokens);
        c.faults = FaultSettings {
            error_rate: self.sim_fault_error_rate,
            cut_after_tokens: self.sim_fault_cut_after_tokens,
            stall_ms: self.sim_fault_stall_ms,
            stall_after_tokens: self.sim_fault_stall_after_tokens,
        };
        c.faults.validate()?;
        c.exit_after = self.sim_fault_exit_after_ms.map(Duration::from_millis);
        if self.sim_zero_latency {
            c.latency = LatencyModel::zero();
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Cli {
        Cli::parse_vllm_style(line.split_whitespace()).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    #[test]
    fn vllm_serve_shape() {
        let c = parse(
            "tollgate-sim facebook/opt-125m --host 127.0.0.1 --port 8001 --served-model-name opt small \
             --max-model-len 4k --max-num-seqs 8 --tensor-parallel-size 2 --enable-lora",
        );
        assert_eq!(c.model_tag.as_deref(), Some("facebook/opt-125m"));
        assert_eq!(c.bind_addr(), "127.0.0.1:8001");
        let cfg = c.into_config().expect("config");
        assert_eq!(cfg.served_model_names, vec!["opt", "small"]);
        assert_eq!(
            (
                cfg.max_model_len,
                cfg.max_num_seqs,
                cfg.tensor_parallel_size
            ),
            (4000, 8, 2)
        );
        assert!(cfg.enable_lora);
    }

    #[test]
    fn serve_subcommand_and_unknown_flags_are_ignored() {
        let c = parse(
            "tollgate-sim serve my/model --dtype auto --gpu-memory-utilization=0.9 --enforce-eager --trust-remote-code \
             -tp 4 --no-enable-prefix-caching --seed -1 --compilation-config {\"level\":3} --port 9000 -q awq",
        );
        assert_eq!(c.model_tag.as_deref(), Some("my/model"));
        assert_eq!(c.tensor_parallel_size, 4);
        assert_eq!(c.port, 9000);
        assert!(!c.into_config().expect("config").prefix_caching);
        let on = parse("tollgate-sim m --enable-prefix-caching");
        assert!(on.into_config().expect("config").prefix_caching);
        assert!(
            parse("tollgate-sim m")
                .into_config()
                .expect("config")
                .prefix_caching
        );
    }

    #[test]
    fn model_flag_and_lora_modules() {
        let c = parse("tollgate-sim --model m --lora-modules a=/p/a b=/p/b --max-model-len 2K");
        let cfg = c.into_config().expect("config");
        assert_eq!(cfg.model, "m");
        assert_eq!(cfg.served_model_names, vec!["m"]);
        assert_eq!(
            cfg.lora_modules,
            vec![("a".into(), "/p/a".into()), ("b".into(), "/p/b".into())]
        );
        assert!(cfg.enable_lora);
        assert_eq!(cfg.max_model_len, 2048);
    }

    #[test]
    fn missing_model_is_an_error() {
        assert!(parse("tollgate-sim --port 1").into_config().is_err());
    }

    #[test]
    fn sim_flags() {
        let cfg = parse(
            "tollgate-sim m --sim-zero-latency --sim-fault-error-rate 0.5 --sim-kv-cache-tokens 99",
        )
        .into_config()
        .expect("config");
        assert!(cfg.latency.is_zero());
        assert_eq!(cfg.faults.error_rate, 0.5);
        assert_eq!(cfg.kv_cache_tokens, 99);
        assert!(parse("tollgate-sim m --sim-fault-error-rate 3")
            .into_config()
            .is_err());
    }

    #[test]
    fn lengths() {
        assert_eq!(parse_len("1k"), Ok(1000));
        assert_eq!(parse_len("1K"), Ok(1024));
        assert_eq!(parse_len("auto"), Ok(2048));
        assert!(parse_len("x").is_err());
        assert!(parse_len("0").is_err());
    }
}
