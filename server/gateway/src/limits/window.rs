//! The limit rules, as plain functions over one subscription's counters: the in-memory backend applies them under
//! a lock, and the Redis backend's Lua scripts are the same rules written for Redis (tested against each other in
//! the integration tests).
//!
//! Windows are fixed: requests and tokens are counted per window (a minute by default), indexed by
//! `now / window`, and the monthly quota per calendar month (UTC). A reservation is counted in the window and month
//! it was made in, and settled there, so a long stream that ends in the next minute corrects the minute it was
//! admitted in.

use tollgate_domain::grant::Limits;

/// One subscription's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub window: i64,
    pub requests: u64,
    pub tokens: u64,
    pub concurrent: u64,
    pub month: i64,
    pub month_tokens: u64,
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

/// Where a request is counted: the window index and the month start (epoch ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    pub window: i64,
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

/// Brings counters to `slot`: a new window or month starts from zero (concurrency carries over).
pub fn roll(c: &mut Counters, slot: Slot) {
    if c.window != slot.window {
        c.window = slot.window;
        c.requests = 0;
        c.tokens = 0;
    }
    if c.month != slot.month {
        c.month = slot.month;
        c.month_tokens = 0;
    }
}

/// Admits a request reserving `reserve` tokens, or says which limit it would break. Checks everything before
/// changing anything, so a refusal leaves the counters as they were.
pub fn admit(
    c: &mut Counters,
    limits: &Limits,
    reserve: u64,
    slot: Slot,
) -> Result<Seen, (LimitKind, Seen)> {
    roll(c, slot);
    let seen = Seen {
        requests: c.requests,
        tokens: c.tokens,
        month_tokens: c.month_tokens,
    };
    if limits
        .max_concurrent
        .is_some_and(|max| c.concurrent + 1 > u64::from(max))
    {
        return Err((LimitKind::Concurrency, seen));
    }
    if limits
        .requests_per_minute
        .is_some_and(|max| c.requests + 1 > u64::from(max))
    {
        return Err((LimitKind::Requests, seen));
    }
    if limits
        .tokens_per_minute
        .is_some_and(|max| c.tokens.saturating_add(reserve) > u64::from(max))
    {
        return Err((LimitKind::Tokens, seen));
    }
    if limits
        .monthly_tokens
        .is_some_and(|max| c.month_tokens.saturating_add(reserve) > max)
    {
        return Err((LimitKind::Monthly, seen));
    }
    c.concurrent += 1;
    c.requests += 1;
    c.tokens = c.tokens.saturating_add(reserve);
    c.month_tokens = c.month_tokens.saturating_add(reserve);
    Ok(Seen {
        requests: c.requests,
        tokens: c.tokens,
        month_tokens: c.month_tokens,
    })
}

/// Replaces a reservation by the tokens really used, in the window and month it was made in (if those are still
/// the current ones), and frees the concurrency slot.
pub fn settle(c: &mut Counters, slot: Slot, reserved: u64, used: u64) {
    c.concurrent = c.concurrent.saturating_sub(1);
    if c.window == slot.window {
        c.tokens = c.tokens.saturating_sub(reserved).saturating_add(used);
    }
    if c.month == slot.month {
        c.month_tokens = c.month_tokens.saturating_sub(reserved).saturating_add(used);
    }
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
        window: 10,
        month: 1000,
    };

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
    fn requests_per_window_are_counted_and_reset() {
        let l = limits(Some(2), None, None, None);
        let mut c = Counters::default();
        assert!(admit(&mut c, &l, 0, SLOT).is_ok());
        assert!(admit(&mut c, &l, 0, SLOT).is_ok());
        let (kind, seen) = admit(&mut c, &l, 0, SLOT).unwrap_err();
        assert_eq!((kind, seen.requests), (LimitKind::Requests, 2));
        let next = Slot { window: 11, ..SLOT };
        assert_eq!(admit(&mut c, &l, 0, next).unwrap().requests, 1);
    }

    #[test]
    fn a_refusal_changes_nothing() {
        let l = limits(Some(10), Some(100), None, None);
        let mut c = Counters::default();
        admit(&mut c, &l, 60, SLOT).unwrap();
        let before = c;
        assert_eq!(
            admit(&mut c, &l, 41, SLOT).unwrap_err().0,
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
            admit(&mut c, &l, 1, SLOT).unwrap_err().0,
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
    fn settling_after_the_window_moved_only_touches_the_month() {
        let l = limits(None, Some(1000), None, Some(5000));
        let mut c = Counters::default();
        admit(&mut c, &l, 300, SLOT).unwrap();
        let later = Slot { window: 11, ..SLOT };
        admit(&mut c, &l, 100, later).unwrap();
        settle(&mut c, SLOT, 300, 50);
        assert_eq!(c.tokens, 100, "the new window keeps its own count");
        assert_eq!(c.month_tokens, 150);
    }

    #[test]
    fn monthly_quota_refuses_and_resets_with_the_month() {
        let l = limits(None, None, None, Some(100));
        let mut c = Counters::default();
        assert_eq!(admit(&mut c, &l, 100, SLOT).unwrap().month_tokens, 100);
        settle(&mut c, SLOT, 100, 100);
        let (kind, seen) = admit(&mut c, &l, 1, SLOT).unwrap_err();
        assert_eq!((kind, seen.month_tokens), (LimitKind::Monthly, 100));
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
