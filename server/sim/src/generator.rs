//! Deterministic, readable generated text.
//!
//! Output is a series of short sentences ("The red fox saw a big owl by the sea.") drawn
//! from a small vocabulary of words of at most three letters, so each word (with its
//! leading space) and each punctuation mark is exactly one token under `tokenizer.rs`.
//! The stream of words is a pure function of (prompt text, seed, choice index): the same
//! request always gets the same answer, whatever the temperature.
//!
//! Finish rule: the "model" stops (finish_reason `stop`) at the end of the first sentence
//! that reaches its natural length, drawn from `[min_output_tokens, max_output_tokens]`
//! (at least `min_tokens`); if `max_tokens` comes first the answer is cut (`length`).
//! With `ignore_eos` it always produces `max_tokens`. Stop strings end it early
//! (`stop`, with `stop_reason` set to the matching string).

use crate::rng::SplitMix64;

const DETERMINERS: &[&str] = &["the", "a", "one", "our", "his", "her", "its", "my"];
const ADJECTIVES: &[&str] = &[
    "red", "big", "old", "new", "hot", "wet", "shy", "odd", "sly", "tan", "dim", "icy",
];
const NOUNS: &[&str] = &[
    "cat", "dog", "sun", "sky", "sea", "day", "man", "boy", "map", "car", "bus", "cup", "box",
    "key", "owl", "fox", "bee", "ant", "hat", "pen", "egg", "oak", "elk", "yak",
];
const VERBS: &[&str] = &[
    "saw", "ran", "got", "had", "met", "fed", "hid", "dug", "led", "won", "cut", "lit", "fit",
    "hit",
];
const PREPOSITIONS: &[&str] = &["by", "on", "in", "at", "for", "to"];
const ADVERBS: &[&str] = &["now", "too", "yet", "so", "all"];

/// Why a choice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// Natural end of the answer, or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The model called a tool (chosen by the model: `tool_choice` `auto` or `required`).
    ToolCalls,
}

impl FinishReason {
    /// The wire value (`"stop"` / `"length"`).
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
        }
    }
}

/// What a generation request asks for.
#[derive(Debug, Clone)]
pub struct GenParams<'a> {
    /// Hash of the prompt (see [`prompt_hash`]).
    pub prompt_hash: u64,
    /// Request seed (`seed` field), 0 when absent.
    pub seed: u64,
    /// Index of the choice (`n` > 1 gives different answers per index).
    pub choice: u32,
    /// Most tokens to produce.
    pub max_tokens: u32,
    /// Natural length range.
    pub natural: (u32, u32),
    /// Do not end before this many tokens.
    pub min_tokens: u32,
    /// Always produce `max_tokens`.
    pub ignore_eos: bool,
    /// Stop strings.
    pub stop: &'a [String],
    /// Keep a matched stop string in the output.
    pub include_stop_str: bool,
}

/// One finished choice: its text and where each token ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The full text returned to the client.
    pub text: String,
    /// Byte offset in `text` where each generated token ends (clipped to `text.len()`).
    pub token_ends: Vec<u32>,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// The stop string that ended it, if any.
    pub stop_reason: Option<String>,
    /// The call this choice makes; `text` is then its arguments (JSON).
    pub tool_call: Option<ToolCall>,
}

/// A tool call: `text` of its completion holds the arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// `chatcmpl-tool-<32 hex>`, as vLLM names them.
    pub id: String,
    /// The function called.
    pub name: String,
}

impl Completion {
    /// Number of generated tokens.
    pub fn num_tokens(&self) -> u32 {
        self.token_ends.len() as u32
    }

    /// Text of token `i` (may be empty after a stop string cut the text).
    pub fn token_text(&self, i: usize) -> &str {
        let start = if i == 0 {
            0
        } else {
            self.token_ends.get(i - 1).copied().unwrap_or(0) as usize
        };
        let end = self.token_ends.get(i).copied().unwrap_or(0) as usize;
        self.text.get(start.min(end)..end).unwrap_or("")
    }
}

impl Completion {
    /// A completion of exactly `text` (structured output, tool arguments), cut at `max_tokens` (`length`),
    /// else ending with `finish`.
    pub fn of_text(text: String, max_tokens: u32, finish: FinishReason) -> Self {
        let mut token_ends = Vec::new();
        let mut end = 0usize;
        let mut cut = None;
        for t in crate::tokenizer::tokens(&text) {
            if token_ends.len() as u32 >= max_tokens {
                cut = Some(end);
                break;
            }
            end += t.len();
            token_ends.push(end as u32);
        }
        let mut text = text;
        let finish = match cut {
            Some(at) => {
                text.truncate(at);
                FinishReason::Length
            }
            None => finish,
        };
        Self {
            text,
            token_ends,
            finish_reason: finish,
            stop_reason: None,
            tool_call: None,
        }
    }
}

/// The seed of a choice's generator: the prompt, the request's `seed` and the choice index.
pub fn choice_seed(prompt_hash: u64, seed: u64, choice: u32) -> u64 {
    prompt_hash ^ seed.rotate_left(17) ^ u64::from(choice).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// FNV-1a hash of the prompt text (the part of the seed that comes from the prompt).
pub fn prompt_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Generates one choice.
pub fn generate(p: &GenParams<'_>) -> Completion {
    let mut rng = SplitMix64::new(choice_seed(p.prompt_hash, p.seed, p.choice));
    let (lo, hi) = (p.natural.0.max(1), p.natural.1.max(p.natural.0).max(1));
    let natural = (lo + rng.below(u64::from(hi - lo) + 1) as u32).max(p.min_tokens);

    let mut words = Words::new(rng);
    let mut text = String::with_capacity(p.max_tokens.min(natural.saturating_add(16)) as usize * 4);
    let mut token_ends = Vec::with_capacity(p.max_tokens.min(natural.saturating_add(16)) as usize);
    let mut finish = FinishReason::Length;
    while (token_ends.len() as u32) < p.max_tokens {
        let sentence_end = words.push_next(&mut text);
        token_ends.push(text.len() as u32);
        if sentence_end && !p.ignore_eos && token_ends.len() as u32 >= natural {
            finish = FinishReason::Stop;
            break;
        }
    }
    let mut completion = Completion {
        text,
        token_ends,
        finish_reason: finish,
        stop_reason: None,
        tool_call: None,
    };
    apply_stop(&mut completion, p.stop, p.include_stop_str);
    completion
}

/// Cuts the completion at the earliest stop string, as vLLM's stop checker does.
fn apply_stop(c: &mut Completion, stop: &[String], include: bool) {
    let mut best: Option<(usize, usize, &String)> = None;
    for s in stop.iter().filter(|s| !s.is_empty()) {
        if let Some(pos) = c.text.find(s.as_str()) {
            let end = pos + s.len();
            if best.is_none_or(|(_, e, _)| end < e) {
                best = Some((pos, end, s));
            }
        }
    }
    let Some((pos, end, s)) = best else { return };
    // The token that completed the stop string is the last one generated.
    let last = c
        .token_ends
        .iter()
        .position(|&e| e as usize >= end)
        .unwrap_or(c.token_ends.len().saturating_sub(1));
    c.token_ends.truncate(last + 1);
    let keep = if include { end } else { pos };
    c.text.truncate(keep);
    for e in &mut c.token_ends {
        *e = (*e).min(keep as u32);
    }
    c.finish_reason = FinishReason::Stop;
    c.stop_reason = Some(s.clone());
}

/// Produces the word stream, one token at a time.
struct Words {
    rng: SplitMix64,
    /// Remaining tokens of the current sentence, produced in order.
    plan: [&'static str; 16],
    len: usize,
    pos: usize,
}

impl Words {
    fn new(rng: SplitMix64) -> Self {
        Self {
            rng,
            plan: [""; 16],
            len: 0,
            pos: 0,
        }
    }

    /// Appends the next token to `out`; returns whether it ends a sentence.
    fn push_next(&mut self, out: &mut String) -> bool {
        if self.pos >= self.len {
            self.plan_sentence();
        }
        let word = self.plan[self.pos];
        push_word(out, word, self.pos == 0);
        self.pos += 1;
        self.pos >= self.len
    }

    fn pick(&mut self, list: &'static [&'static str]) -> &'static str {
        list[self.rng.below(list.len() as u64) as usize]
    }

    fn push(&mut self, w: &'static str) {
        if self.len < self.plan.len() {
            self.plan[self.len] = w;
            self.len += 1;
        }
    }

    fn noun_phrase(&mut self) {
        let d = self.pick(DETERMINERS);
        self.push(d);
        if self.rng.below(2) == 0 {
            let a = self.pick(ADJECTIVES);
            self.push(a);
        }
        let n = self.pick(NOUNS);
        self.push(n);
    }

    fn plan_sentence(&mut self) {
        self.len = 0;
        self.pos = 0;
        self.noun_phrase();
        let v = self.pick(VERBS);
        self.push(v);
        self.noun_phrase();
        if self.rng.below(2) == 0 {
            let p = self.pick(PREPOSITIONS);
            self.push(p);
            self.noun_phrase();
        }
        if self.rng.below(4) == 0 {
            self.push(",");
            let a = self.pick(ADVERBS);
            self.push(a);
        }
        self.push(".");
    }
}

/// Appends `word` to `out`: a leading space unless it starts the text, capitalised at the
/// start of a sentence. Punctuation is appended as is.
fn push_word(out: &mut String, word: &str, capital: bool) {
    if word == "." || word == "," {
        out.push_str(word);
        return;
    }
    if !out.is_empty() {
        out.push(' ');
    }
    let mut chars = word.chars();
    if let (true, Some(first)) = (capital, chars.next()) {
        out.push(first.to_ascii_uppercase());
        out.push_str(chars.as_str());
    } else {
        out.push_str(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer;

    fn params(max_tokens: u32) -> GenParams<'static> {
        GenParams {
            prompt_hash: prompt_hash("Tell me a story"),
            seed: 0,
            choice: 0,
            max_tokens,
            natural: (16, 64),
            min_tokens: 0,
            ignore_eos: false,
            stop: &[],
            include_stop_str: false,
        }
    }

    #[test]
    fn deterministic_for_prompt_and_seed() {
        let a = generate(&params(100));
        let b = generate(&params(100));
        assert_eq!(a, b);
        let other_seed = generate(&GenParams {
            seed: 42,
            ..params(100)
        });
        assert_ne!(a.text, other_seed.text);
        let other_choice = generate(&GenParams {
            choice: 1,
            ..params(100)
        });
        assert_ne!(a.text, other_choice.text);
    }

    #[test]
    fn readable_sentences() {
        let c = generate(&params(100));
        assert!(
            c.text
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_uppercase()),
            "{}",
            c.text
        );
        assert!(c.text.ends_with('.'), "{}", c.text);
        assert!(c.text.split_whitespace().count() >= 4);
    }

    #[test]
    fn token_count_matches_the_tokenizer() {
        for seed in 0..50 {
            let c = generate(&GenParams {
                seed,
                ..params(200)
            });
            assert_eq!(
                tokenizer::count(&c.text),
                c.num_tokens() as usize,
                "{}",
                c.text
            );
            let joined: String = (0..c.token_ends.len()).map(|i| c.token_text(i)).collect();
            assert_eq!(joined, c.text);
        }
    }

    #[test]
    fn natural_end_is_stop_within_range() {
        for seed in 0..50 {
            let c = generate(&GenParams {
                seed,
                ..params(1000)
            });
            assert_eq!(c.finish_reason, FinishReason::Stop);
            assert!(
                c.num_tokens() >= 16 && c.num_tokens() < 64 + 20,
                "{}",
                c.num_tokens()
            );
        }
    }

    #[test]
    fn max_tokens_gives_length() {
        let c = generate(&params(5));
        assert_eq!(c.num_tokens(), 5);
        assert_eq!(c.finish_reason, FinishReason::Length);
        let c = generate(&GenParams {
            ignore_eos: true,
            ..params(300)
        });
        assert_eq!(c.num_tokens(), 300);
        assert_eq!(c.finish_reason, FinishReason::Length);
    }

    #[test]
    fn stop_string_cuts_the_text() {
        let stop = vec![".".to_string()];
        let c = generate(&GenParams {
            stop: &stop,
            ..params(100)
        });
        assert_eq!(c.finish_reason, FinishReason::Stop);
        assert_eq!(c.stop_reason.as_deref(), Some("."));
        assert!(!c.text.contains('.'));
        let full = generate(&params(100));
        assert!(full.text.starts_with(&c.text));
        let with = generate(&GenParams {
            stop: &stop,
            include_stop_str: true,
            ..params(100)
        });
        assert!(with.text.ends_with('.'));
        assert_eq!(with.num_tokens(), c.num_tokens());
    }

    #[test]
    fn min_tokens_delays_the_end() {
        let c = generate(&GenParams {
            min_tokens: 150,
            ..params(1000)
        });
        assert!(c.num_tokens() >= 150);
    }
}
