//! The limit rules, as plain functions over one subscription's counters: the in-memory backend applies them under
//! a lock, and the Redis backend's Lua scripts are the same rules written for Redis (tested against each other in
//! the integration tests).
//!
//! Requests and tokens per minute are counted over a **sliding window**: the window (a minute by default) is cut
//! into [`STEPS`] steps, and an admission counts what the last `STEPS` steps and the current one admitted. That
//! span is never shorter than the window, so in any window-long span (any 60 seconds) at most the limit is admitted,
//! whatever the timing; fixed windows let twice the limit through across a window edge. The price is that a request
//! leaves the count up to one step (a second) after it left the window, and the counters stay small: one bucket per
//! step, whatever the traffic (an exact log would keep one entry per request). The monthly quota is counted per
//! calendar month (UTC).
//!
//! A reservation is counted in the step it was admitted in and settled there, so a long stream that ends later
//! corrects the step it was admitted in, while that step is still counted (after, the reservation has left the
//! window anyway).

use tollgate_domain::grant::Limits;

/// Steps a window is cut into.
pub const STEPS: i64 = 60;
/// Buckets kept: the window's steps and the current one.
const RING: usize = STEPS as usize + 1;

/// The length of one step of a `window_ms` window, rounded up so that `STEPS` steps span at least the window.
pub fn step_ms(window_ms: i64) -> i64 {
    (window_ms.max(1) + STEPS - 1) / STEPS
}

/// When (epoch ms) what was admitted in `step` stops counting: when step `step + STEPS + 1` begins.
pub fn leaves_at_ms(step: i64, window_ms: i64) -> i64 {
    step.saturating_add(RING as i64)
        .saturating_mul(step_ms(window_ms))
}

/// One step's admissions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    requests: u64,
    tokens: u64,
}

/// One subscription's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// The newest step counted: the window holds steps `step - STEPS ..= step`.
    pub step: i64,
    /// Requests and tokens admitted in the window (the buckets' sums).
    pub requests: u64,
    pub tokens: u64,
    pub concurrent: u64,
    pub month: i64,
    pub month_tokens: u64,
    /// Step `s` is in `buckets[s mod RING]`.
    buckets: [Bucket; RING],
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            step: 0,
            requests: 0,
            tokens: 0,
            concurrent: 0,
            month: 0,
            month_tokens: 0,
            buckets: [Bucket::default(); RING],
        }
    }
}

impl Counters {
    fn bucket(&mut self, step: i64) -> &mut Bucket {
        &mut self.buckets[step.rem_euclid(RING as i64) as usize]
    }

    /// Whether `step` is still in the window.
    fn holds(&self, step: i64) -> bool {
        step <= self.step && step >= self.step - STEPS
    }

    /// Where an admission at `step` is counted: its own step, or the oldest one still counted when `step` is older
    /// than that (a clock that went back by more than a window).
    fn counting_step(&self, step: i64) -> i64 {
        step.max(self.step - STEPS)
    }

    /// Adds requests and tokens to `step`'s bucket and the window's totals.
    fn add(&mut self, step: i64, requests: u64, tokens: u64) {
        let at = self.counting_step(step);
        let b = self.bucket(at);
        b.requests = b.requests.saturating_add(requests);
        b.tokens = b.tokens.saturating_add(tokens);
        self.requests = self.requests.saturating_add(requests);
        self.tokens = self.tokens.saturating_add(tokens);
    }

    /// The step that must leave the window before a request refused for `kind` could fit: the oldest one whose
    /// leaving frees enough. `need_requests` / `need_tokens` are how much must leave.
    fn frees_at(&self, need_requests: u64, need_tokens: u64) -> i64 {
        let (mut requests, mut tokens) = (0u64, 0u64);
        for s in self.step - STEPS..=self.step {
            let b = self.buckets[s.rem_euclid(RING as i64) as usize];
            requests = requests.saturating_add(b.requests);
            tokens = tokens.saturating_add(b.tokens);
            if requests >= need_requests && tokens >= need_tokens {
                return s;
            }
        }
        self.step
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Concurrency,
    Requests,
    Tokens,
    Monthly,
}

impl LimitKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Concurrency => "concurrency",
            Self::Requests => "requests",
            Self::Tokens => "tokens",
            // The name usage records and rollups know the monthly quota's refusals by.
            Self::Monthly => tollgate_domain::usage::rollup::MONTHLY_REFUSAL,
        }
    }
}

/// Where a request is counted: its step of the rate window and the month start (epoch ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    pub step: i64,
    pub month: i64,
}

/// Counters after a decision, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub requests: u64,
    pub tokens: u64,
    /// Tokens counted this month, this request's reservation included once admitted.
    pub month_tokens: u64,
}

/// Brings counters to `slot`: steps that left the window stop counting, a new month starts from zero
/// (concurrency carries over). A slot older than the newest step counted (another replica's clock) moves nothing.
pub fn roll(c: &mut Counters, slot: Slot) {
    if slot.step > c.step {
        if slot.step - c.step >= RING as i64 {
            c.buckets = [Bucket::default(); RING];
            c.requests = 0;
            c.tokens = 0;
        } else {
            for s in c.step + 1..=slot.step {
                let gone = std::mem::take(c.bucket(s));
                c.requests = c.requests.saturating_sub(gone.requests);
                c.tokens = c.tokens.saturating_sub(gone.tokens);
            }
        }
        c.step = slot.step;
    }
    if c.month != slot.month {
        c.month = slot.month;
        c.month_tokens = 0;
    }
}

/// A refusal: which limit, the counters seen, and for the per-minute limits the step whose leaving the window lets
/// the request fit (see [`leaves_at_ms`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub kind: LimitKind,
    pub seen: Seen,
    pub frees_at_step: Option<i64>,
}

/// Admits a request reserving `reserve` tokens, or says which limit it would break. Checks everything before
/// changing anything, so a refusal leaves the counters as they were (bar the roll).
pub fn admit(c: &mut Counters, limits: &Limits, reserve: u64, slot: Slot) -> Result<Seen, Refusal> {
    roll(c, slot);
    let seen = Seen {
        requests: c.requests,
        tokens: c.tokens,
        month_tokens: c.month_tokens,
    };
    let refuse = |kind, frees_at_step| {
        Err(Refusal {
            kind,
            seen,
            frees_at_step,
        })
    };
    if limits
        .max_concurrent
        .is_some_and(|max| c.concurrent + 1 > u64::from(max))
    {
        return refuse(LimitKind::Concurrency, None);
    }
    if let Some(max) = limits.requests_per_minute {
        if c.requests + 1 > u64::from(max) {
            let frees = c.frees_at(c.requests + 1 - u64::from(max), 0);
            return refuse(LimitKind::Requests, Some(frees));
        }
    }
    if let Some(max) = limits.tokens_per_minute {
        let want = c.tokens.saturating_add(reserve);
        if want > u64::from(max) {
            let frees = c.frees_at(0, want - u64::from(max));
            return refuse(LimitKind::Tokens, Some(frees));
        }
    }
    if limits
        .monthly_tokens
        .is_some_and(|max| c.month_tokens.saturating_add(reserve) > max)
    {
        return refuse(LimitKind::Monthly, None);
    }
    c.concurrent += 1;
    c.add(slot.step, 1, reserve);
    c.month_tokens = c.month_tokens.saturating_add(reserve);
    Ok(Seen {
        requests: c.requests,
        tokens: c.tokens,
        month_tokens: c.month_tokens,
    })
}

/// Replaces a reservation by the tokens really used, in the step and month it was made in (if those still count),
/// and frees the concurrency slot.
pub fn settle(c: &mut Counters, slot: Slot, reserved: u64, used: u64) {
    c.concurrent = c.concurrent.saturating_sub(1);
    if c.holds(slot.step) {
        let b = c.bucket(slot.step);
        let before = b.tokens;
        b.tokens = before.saturating_sub(reserved).saturating_add(used);
        let after = b.tokens;
        c.tokens = c.tokens.saturating_sub(before).saturating_add(after);
    }
    if c.month == slot.month {
        c.month_tokens = c.month_tokens.saturating_sub(reserved).saturating_add(used);
    }
}

/// Counts requests and tokens admitted elsewhere (another replica, or this one under local limits) in `slot`'s
/// step, as far as that step is still in the window, and the tokens in its month.
pub fn absorb(c: &mut Counters, slot: Slot, requests: u64, tokens: u64) {
    roll(c, slot);
    if slot.step >= c.step - STEPS {
        c.add(slot.step, requests, tokens);
    }
    if c.month == slot.month {
        c.month_tokens = c.month_tokens.saturating_add(tokens);
    }
}

/// Raises the window's totals to at least what shared counters reported (`seen` after an admission there), the
/// difference counted in `slot`'s step.
pub fn observe(c: &mut Counters, slot: Slot, seen: Seen) {
    roll(c, slot);
    let requests = seen.requests.saturating_sub(c.requests);
    let tokens = seen.tokens.saturating_sub(c.tokens);
    c.add(slot.step, requests, tokens);
}

/// How many tokens to reserve for a request: the prompt estimate plus what it may generate (at most
/// `completion_cap`), capped by the per-minute and monthly limits themselves (so a request bigger than a limit can
/// still run in an empty window, and is then charged its real size).
pub fn reservation(
    prompt_estimate: u64,
    max_tokens: Option<u64>,
    choices: u64,
    default_max_tokens: u64,
    completion_cap: u64,
    limits: &Limits,
) -> u64 {
    let completion = max_tokens
        .unwrap_or(default_max_tokens)
        .saturating_mul(choices.max(1))
        .min(completion_cap);
    let mut r = prompt_estimate.saturating_add(completion);
    if let Some(tpm) = limits.tokens_per_minute {
        r = r.min(u64::from(tpm));
    }
    if let Some(month) = limits.monthly_tokens {
        r = r.min(month);
    }
    r
}

/// What a request that sets no `max_tokens` may generate: the gateway's default, but no more than the model's
/// context leaves after the prompt, at least 1. vLLM itself would fill the context; told a `max_tokens` that does
/// not fit, it refuses the request instead. The prompt is known only as an estimate from its JSON size, and the
/// engine's chat template adds tokens of its own (34 for a two-word message on the simulator), so the room left
/// keeps a quarter of the estimate and `TEMPLATE_TOKENS` spare. `context_length` 0 means unknown.
pub fn default_completion(
    default_max_tokens: u64,
    context_length: u64,
    prompt_estimate: u64,
) -> u64 {
    const TEMPLATE_TOKENS: u64 = 64;
    if context_length == 0 {
        return default_max_tokens;
    }
    let prompt = prompt_estimate
        .saturating_add(prompt_estimate / 4)
        .saturating_add(TEMPLATE_TOKENS);
    default_max_tokens.min(context_length.saturating_sub(prompt).max(1))
}

/// The smaller of two limits where 0 means unknown (the other one holds; 0 when neither is known).
pub fn least_known(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

/// The completion tokens per choice a reservation leaves room for: what the engine is told it may generate
/// (`max_tokens`), so no request exceeds what it reserved. At least 1, the smallest cap an engine accepts; a prompt
/// estimate that fills the reservation by itself still gets an answer, charged its real size.
pub fn completion_budget(reserved: u64, prompt_estimate: u64, choices: u64) -> u64 {
    (reserved.saturating_sub(prompt_estimate) / choices.max(1)).max(1)
}

/// A prompt-token estimate from the raw JSON size of the prompt: about three bytes per token, a little high for
/// English text so reservations err on the safe side; settlement corrects it to the engine's count.
pub fn estimate_prompt_tokens(prompt_bytes: usize) -> u64 {
    (prompt_bytes as u64).div_ceil(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOT: Slot = Slot {
        step: 10_000,
        month: 1000,
    };

    fn at(step: i64) -> Slot {
        Slot { step, ..SLOT }
    }

    fn limits(rpm: Option<u32>, tpm: Option<u32>, conc: Option<u32>, month: Option<u64>) -> Limits {
        Limits {
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
            max_concurrent: conc,
            monthly_tokens: month,
        }
    }

    #[test]
    fn a_request_without_max_tokens_never_asks_for_more_than_the_context_leaves() {
        assert_eq!(default_completion(4096, 0, 100), 4096);
        assert_eq!(default_completion(4096, 131_072, 100), 4096);
        // 100 estimated prompt tokens: 125 with the spare quarter, 64 more for the template.
        assert_eq!(default_completion(4096, 2048, 100), 2048 - 125 - 64);
        assert_eq!(default_completion(4096, 2048, 5000), 1);
    }

    #[test]
    fn the_least_known_context_holds() {
        assert_eq!(least_known(0, 0), 0);
        assert_eq!(least_known(131_072, 0), 131_072);
        assert_eq!(least_known(0, 4096), 4096);
        assert_eq!(least_known(131_072, 4096), 4096);
        assert_eq!(least_known(2048, 4096), 2048);
    }

    #[test]
    fn requests_count_until_their_step_leaves_the_window() {
        let l = limits(Some(2), None, None, None);
        let mut c = Counters::default();
        assert!(admit(&mut c, &l, 0, SLOT).is_ok());
        assert!(admit(&mut c, &l, 0, at(SLOT.step + 30)).is_ok());
        let refusal = admit(&mut c, &l, 0, at(SLOT.step + 59)).unwrap_err();
        assert_eq!(
            (refusal.kind, refusal.seen.requests),
            (LimitKind::Requests, 2)
        );
        assert_eq!(
            refusal.frees_at_step,
            Some(SLOT.step),
            "the oldest request's leaving frees room for one"
        );
        // Step + 60 still counts the first request: the window is the last 60 steps and the current one.
        assert!(admit(&mut c, &l, 0, at(SLOT.step + 60)).is_err());
        let seen = admit(&mut c, &l, 0, at(SLOT.step + 61)).unwrap();
        assert_eq!(seen.requests, 2, "the first left, the second still counts");
        // A long pause empties the window entirely.
        assert_eq!(
            admit(&mut c, &l, 0, at(SLOT.step + 1000)).unwrap().requests,
            1
        );
    }

    #[test]
    fn a_window_edge_lets_no_burst_through() {
        // 10 requests at the very end of one minute, 10 more asked at the very start of the next: a fixed window
        // admits all 20 within two seconds; the sliding window refuses the second ten.
        let l = limits(Some(10), None, None, None);
        let mut c = Counters::default();
        for _ in 0..10 {
            admit(&mut c, &l, 0, at(59)).unwrap();
        }
        for _ in 0..10 {
            assert_eq!(
                admit(&mut c, &l, 0, at(61)).unwrap_err().kind,
                LimitKind::Requests
            );
        }
        assert!(admit(&mut c, &l, 0, at(59 + 61)).is_ok());
    }

    #[test]
    fn a_token_refusal_says_which_step_must_leave() {
        let l = limits(None, Some(100), None, None);
        let mut c = Counters::default();
        admit(&mut c, &l, 30, at(1)).unwrap();
        admit(&mut c, &l, 30, at(5)).unwrap();
        admit(&mut c, &l, 30, at(9)).unwrap();
        // 90 counted, 50 asked: 40 must leave, so the first two steps.
        let refusal = admit(&mut c, &l, 50, at(20)).unwrap_err();
        assert_eq!(
            (refusal.kind, refusal.frees_at_step),
            (LimitKind::Tokens, Some(5))
        );
        assert!(admit(&mut c, &l, 50, at(5 + 61)).is_ok());
        assert_eq!(leaves_at_ms(5, 60_000), 66_000);
    }

    #[test]
    fn settling_corrects_the_step_it_was_admitted_in() {
        let l = limits(None, Some(100), None, None);
        let mut c = Counters::default();
        admit(&mut c, &l, 80, at(1)).unwrap();
        admit(&mut c, &l, 10, at(30)).unwrap();
        settle(&mut c, at(1), 80, 5);
        assert_eq!(c.tokens, 15);
        // When step 1 leaves, only its real usage (5) leaves with it.
        roll(&mut c, at(62));
        assert_eq!(c.tokens, 10);
    }

    #[test]
    fn absorbed_and_observed_counts_take_part_in_the_window() {
        let l = limits(Some(5), None, None, None);
        let mut c = Counters::default();
        absorb(&mut c, at(3), 3, 30);
        assert_eq!((c.requests, c.tokens, c.month_tokens), (3, 30, 30));
        observe(
            &mut c,
            at(4),
            Seen {
                requests: 4,
                tokens: 10,
                month_tokens: 0,
            },
        );
        assert_eq!(
            (c.requests, c.tokens),
            (4, 30),
            "raised to what was seen, never lowered"
        );
        admit(&mut c, &l, 0, at(4)).unwrap();
        assert!(admit(&mut c, &l, 0, at(4)).is_err());
        assert_eq!(
            admit(&mut c, &l, 0, at(3 + 61)).map(|s| s.requests),
            Ok(3),
            "step 3 left; step 4's two requests still count"
        );
        absorb(&mut c, at(3), 1, 1);
        assert_eq!(c.requests, 3, "a step already gone counts nowhere");
    }

    #[test]
    fn steps_span_at_least_the_window() {
        assert_eq!(step_ms(60_000), 1000);
        assert!(step_ms(1000) * STEPS >= 1000);
        assert!(step_ms(1001) * STEPS >= 1001);
        assert_eq!(step_ms(0), 1);
    }

    #[test]
    fn a_refusal_changes_nothing() {
        let l = limits(Some(10), Some(100), None, None);
        let mut c = Counters::default();
        admit(&mut c, &l, 60, SLOT).unwrap();
        let before = c.clone();
        assert_eq!(
            admit(&mut c, &l, 41, SLOT).unwrap_err().kind,
            LimitKind::Tokens
        );
        assert_eq!(c, before);
        assert!(
            admit(&mut c, &l, 40, SLOT).is_ok(),
            "exactly up to the limit"
        );
    }

    #[test]
    fn settlement_replaces_the_reservation_by_real_usage() {
        let l = limits(None, Some(1000), Some(1), Some(10_000));
        let mut c = Counters::default();
        admit(&mut c, &l, 500, SLOT).unwrap();
        assert_eq!((c.tokens, c.month_tokens, c.concurrent), (500, 500, 1));
        assert_eq!(
            admit(&mut c, &l, 1, SLOT).unwrap_err().kind,
            LimitKind::Concurrency
        );
        settle(&mut c, SLOT, 500, 120);
        assert_eq!((c.tokens, c.month_tokens, c.concurrent), (120, 120, 0));
    }

    #[test]
    fn a_refund_is_a_settlement_at_what_was_used() {
        let l = limits(None, Some(1000), None, None);
        let mut c = Counters::default();
        admit(&mut c, &l, 700, SLOT).unwrap();
        settle(&mut c, SLOT, 700, 0);
        assert_eq!(c.tokens, 0);
        assert!(admit(&mut c, &l, 1000, SLOT).is_ok());
    }

    #[test]
    fn settling_after_the_step_left_only_touches_the_month() {
        let l = limits(None, Some(1000), None, Some(5000));
        let mut c = Counters::default();
        admit(&mut c, &l, 300, SLOT).unwrap();
        let later = at(SLOT.step + 61);
        admit(&mut c, &l, 100, later).unwrap();
        settle(&mut c, SLOT, 300, 50);
        assert_eq!(c.tokens, 100, "the window holds only the later request");
        assert_eq!(c.month_tokens, 150);
    }

    #[test]
    fn monthly_quota_refuses_and_resets_with_the_month() {
        let l = limits(None, None, None, Some(100));
        let mut c = Counters::default();
        assert_eq!(admit(&mut c, &l, 100, SLOT).unwrap().month_tokens, 100);
        settle(&mut c, SLOT, 100, 100);
        let refusal = admit(&mut c, &l, 1, SLOT).unwrap_err();
        assert_eq!(
            (refusal.kind, refusal.seen.month_tokens),
            (LimitKind::Monthly, 100)
        );
        let next_month = Slot {
            month: 2000,
            ..SLOT
        };
        assert_eq!(admit(&mut c, &l, 1, next_month).unwrap().month_tokens, 1);
    }

    #[test]
    fn concurrency_never_goes_negative() {
        let mut c = Counters::default();
        settle(&mut c, SLOT, 0, 0);
        assert_eq!(c.concurrent, 0);
    }

    #[test]
    fn the_completion_budget_is_what_the_reservation_leaves_per_choice() {
        let none = limits(None, None, None, None);
        let r = reservation(10, None, 1, 4096, 100_000, &none);
        assert_eq!(completion_budget(r, 10, 1), 4096);
        let r = reservation(10, Some(u64::MAX), 4, 4096, 8192, &none);
        assert_eq!(completion_budget(r, 10, 4), 8192 / 4);
        let tight = limits(None, Some(50), None, None);
        let r = reservation(10, Some(200), 1, 4096, 8192, &tight);
        assert_eq!(completion_budget(r, 10, 1), 40);
        assert_eq!(completion_budget(50, 80, 1), 1, "never 0");
    }

    #[test]
    fn a_long_prompt_keeps_its_full_completion_budget() {
        // 300 KB of prompt estimates 100,000 tokens: more than the completion cap, which must not eat into the
        // answer's room (it used to cap the whole reservation, leaving a one-token answer).
        let none = limits(None, None, None, None);
        let prompt = estimate_prompt_tokens(300_000);
        let r = reservation(prompt, None, 1, 4096, 32_768, &none);
        assert_eq!(r, prompt + 4096);
        assert_eq!(completion_budget(r, prompt, 1), 4096);
    }

    #[test]
    fn reservations_are_capped() {
        let none = Limits::default();
        assert_eq!(reservation(10, Some(20), 1, 4096, 100_000, &none), 30);
        assert_eq!(reservation(10, Some(20), 3, 4096, 100_000, &none), 70);
        assert_eq!(reservation(10, None, 1, 4096, 100_000, &none), 4106);
        assert_eq!(
            reservation(10, Some(u64::MAX), 128, 4096, 8192, &none),
            10 + 8192
        );
        let tight = limits(None, Some(50), None, None);
        assert_eq!(reservation(10, Some(200), 1, 4096, 8192, &tight), 50);
        let quota = limits(None, None, None, Some(30));
        assert_eq!(reservation(10, Some(200), 1, 4096, 8192, &quota), 30);
        assert_eq!(estimate_prompt_tokens(0), 0);
        assert_eq!(estimate_prompt_tokens(10), 4);
    }
}
