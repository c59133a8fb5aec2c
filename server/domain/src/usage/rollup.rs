//! Rollups: usage summed per minute, hour and day for each (tenant, team, subscription, key, model, source), so
//! that dashboards read a few thousand summed rows instead of millions of records. The rules here (buckets,
//! the latency histogram, how a range is cut into whole days, hours and minutes) have no IO; the store writes the
//! sums in the transaction that inserts the records (`Store::insert_usage_batch`) and reads them back.
//!
//! Percentiles come from a fixed histogram: the count of requests in each of [`BUCKETS`] latency ranges, stored as
//! one column each. Two rollups merge by adding their columns, so any sum of rows (a day across tenants, a month
//! of one key) still yields p50/p95/p99, within the width of one bucket (ARCHITECTURE.md says why this shape).

use serde::{Deserialize, Serialize};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// The three rollup sizes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grain {
    Minute,
    Hour,
    Day,
}

impl Grain {
    pub const ALL: [Grain; 3] = [Grain::Minute, Grain::Hour, Grain::Day];

    pub fn millis(self) -> i64 {
        match self {
            Grain::Minute => MINUTE_MS,
            Grain::Hour => HOUR_MS,
            Grain::Day => DAY_MS,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Minute => "minute",
            Grain::Hour => "hour",
            Grain::Day => "day",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// The start of the bucket `at` falls in (UTC; days start at midnight UTC).
    pub fn floor(self, at: i64) -> i64 {
        at.div_euclid(self.millis()) * self.millis()
    }

    /// The first bucket start at or after `at`.
    pub fn ceil(self, at: i64) -> i64 {
        let f = self.floor(at);
        if f == at {
            f
        } else {
            f + self.millis()
        }
    }

    /// The points a chart of `[from, until)` shows: minutes up to three hours, hours up to three days, days beyond,
    /// so a chart has between about 60 and a few hundred points and its rollups stay small to read.
    pub fn for_chart(from: i64, until: i64) -> Self {
        let span = until.saturating_sub(from);
        if span <= 3 * HOUR_MS {
            Grain::Minute
        } else if span <= 3 * DAY_MS {
            Grain::Hour
        } else {
            Grain::Day
        }
    }
}

/// A piece of a time range that one rollup table covers exactly: buckets of `grain` starting in `[from, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub grain: Grain,
    pub from: i64,
    pub until: i64,
}

/// Cuts `[from, until)` into whole days, the hours around them and the minutes around those: at most five spans,
/// whose rollups together hold exactly the records of the range's minutes (`from` is rounded down to its minute,
/// `until` up to the end of its own, so a range ending now includes the current minute). Reading a month this way touches about 30 day rows per series instead of 43,200
/// minute rows.
pub fn cover(from: i64, until: i64) -> Vec<Span> {
    cover_up_to(from, until, Grain::Day)
}

/// [`cover`] with no span coarser than `coarsest`: what a series per `coarsest` bucket reads (a day row cannot be
/// split into hours).
pub fn cover_up_to(from: i64, until: i64, coarsest: Grain) -> Vec<Span> {
    let mut out = Vec::with_capacity(5);
    if from >= until {
        return out;
    }
    // Whole minutes: from the start of `from`'s to the end of `until`'s, so "the last hour" includes this minute.
    let (from, until) = (Grain::Minute.floor(from), Grain::Minute.ceil(until));
    cover_into(&mut out, coarsest, from, until);
    out.sort_by_key(|s| s.from);
    out
}

fn cover_into(out: &mut Vec<Span>, grain: Grain, from: i64, until: i64) {
    if from >= until {
        return;
    }
    let finer = match grain {
        Grain::Day => Some(Grain::Hour),
        Grain::Hour => Some(Grain::Minute),
        Grain::Minute => None,
    };
    let (start, end) = (grain.ceil(from), grain.floor(until));
    match finer {
        Some(finer) if start >= end => cover_into(out, finer, from, until),
        Some(finer) => {
            cover_into(out, finer, from, start);
            out.push(Span {
                grain,
                from: start,
                until: end,
            });
            cover_into(out, finer, end, until);
        }
        None => out.push(Span { grain, from, until }),
    }
}

/// Upper bounds (exclusive) of the histogram's buckets, in milliseconds; the last bucket is open. Doubling from
/// 25 ms: a quantile is known within a factor of two at worst, and interpolated inside its bucket.
pub const BOUNDS_MS: [u64; BUCKETS - 1] =
    [25, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12_800, 25_600];
pub const BUCKETS: usize = 12;

/// The bucket a duration falls in.
pub fn bucket_of(ms: u64) -> usize {
    BOUNDS_MS.partition_point(|&b| b <= ms)
}

/// Counts per latency bucket; merged by adding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Histogram(pub [u64; BUCKETS]);

impl Histogram {
    pub fn observe(&mut self, ms: u64) {
        self.0[bucket_of(ms)] += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    pub fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The `q` quantile (0 < q <= 1) in milliseconds, interpolated linearly inside its bucket; None when empty.
    /// The open last bucket answers its lower bound ("at least 25.6 s").
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut below = 0u64;
        for (i, &n) in self.0.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let lo = if i == 0 { 0 } else { BOUNDS_MS[i - 1] } as f64;
                let Some(&hi) = BOUNDS_MS.get(i) else {
                    return Some(lo);
                };
                let within = (rank - below as f64) / n as f64;
                return Some(lo + (hi as f64 - lo) * within);
            }
            below += n;
        }
        None
    }
}

/// The refusal of a 429 by the monthly token quota, as usage records name it (the gateway's limit label).
pub const MONTHLY_REFUSAL: &str = "monthly_tokens";

/// What one rollup row sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Sums {
    pub requests: u64,
    /// Answers with a status of 400 or more (429s included).
    pub errors: u64,
    /// Answers refused by a rate limit or quota (429).
    pub rate_limited: u64,
    /// Of those, the ones refused by the monthly token quota.
    #[serde(default)]
    pub quota_refused: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms: u64,
    pub ttft_ms: u64,
    pub latency: Histogram,
    /// Only requests that produced a first token.
    pub ttft: Histogram,
}

impl Sums {
    /// Adds one request; `refusal` names the limit that refused a 429 (`MONTHLY_REFUSAL` for the monthly quota).
    #[allow(clippy::too_many_arguments)] // one request's facts, each its own column
    pub fn record(
        &mut self,
        status: u16,
        refusal: &str,
        prompt_tokens: u64,
        completion_tokens: u64,
        latency_ms: u64,
        ttft_ms: Option<u64>,
    ) {
        self.requests += 1;
        self.errors += u64::from(status >= 400);
        self.rate_limited += u64::from(status == 429);
        self.quota_refused += u64::from(status == 429 && refusal == MONTHLY_REFUSAL);
        self.prompt_tokens += prompt_tokens;
        self.completion_tokens += completion_tokens;
        self.latency_ms += latency_ms;
        self.latency.observe(latency_ms);
        if let Some(t) = ttft_ms {
            self.ttft_ms += t;
            self.ttft.observe(t);
        }
    }

    pub fn merge(&mut self, o: &Sums) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.rate_limited += o.rate_limited;
        self.quota_refused += o.quota_refused;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.latency_ms += o.latency_ms;
        self.ttft_ms += o.ttft_ms;
        self.latency.merge(&o.latency);
        self.ttft.merge(&o.ttft);
    }

    pub fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_double_from_25_ms_and_the_last_is_open() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(24), 0);
        assert_eq!(bucket_of(25), 1);
        assert_eq!(bucket_of(99), 2);
        assert_eq!(bucket_of(25_599), 10);
        assert_eq!(bucket_of(25_600), 11);
        assert_eq!(bucket_of(u64::MAX), 11);
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        // 100 requests between 100 and 200 ms: the median is in the middle of that bucket.
        for _ in 0..100 {
            h.observe(150);
        }
        assert_eq!(h.quantile(0.5), Some(150.0));
        assert_eq!(h.quantile(1.0), Some(200.0));
        // Five slow ones: p99 lands in their bucket, p50 does not move much.
        for _ in 0..5 {
            h.observe(5_000);
        }
        let p99 = h.quantile(0.99).unwrap();
        assert!((3_200.0..=6_400.0).contains(&p99), "{p99}");
        assert!(h.quantile(0.5).unwrap() < 200.0);
        let mut open = Histogram::default();
        open.observe(90_000);
        assert_eq!(open.quantile(0.5), Some(25_600.0));
    }

    #[test]
    fn a_quantile_of_merged_histograms_is_that_of_all_observations() {
        let (mut a, mut b, mut all) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for (i, ms) in [10u64, 40, 70, 300, 800, 1_500, 9_000, 30, 55]
            .iter()
            .enumerate()
        {
            let half = if i % 2 == 0 { &mut a } else { &mut b };
            half.observe(*ms);
            all.observe(*ms);
        }
        a.merge(&b);
        assert_eq!(a, all);
    }

    #[test]
    fn sums_count_errors_and_429s_and_ttft_only_when_present() {
        let mut s = Sums::default();
        s.record(200, "", 10, 5, 120, Some(30));
        s.record(429, "requests", 3, 0, 2, None);
        s.record(503, "", 4, 0, 9, None);
        s.record(429, MONTHLY_REFUSAL, 1, 0, 1, None);
        assert_eq!(
            (
                s.requests,
                s.errors,
                s.rate_limited,
                s.quota_refused,
                s.tokens()
            ),
            (4, 3, 2, 1, 23)
        );
        assert_eq!((s.latency_ms, s.ttft_ms), (132, 30));
        assert_eq!((s.latency.count(), s.ttft.count()), (4, 1));
    }

    #[test]
    fn grains_floor_and_ceil_to_their_bucket() {
        assert_eq!(Grain::Hour.floor(3 * HOUR_MS + 5), 3 * HOUR_MS);
        assert_eq!(Grain::Hour.ceil(3 * HOUR_MS + 5), 4 * HOUR_MS);
        assert_eq!(Grain::Hour.ceil(3 * HOUR_MS), 3 * HOUR_MS);
        assert_eq!(Grain::Day.floor(-1), -DAY_MS);
        assert_eq!(Grain::for_chart(0, HOUR_MS), Grain::Minute);
        assert_eq!(Grain::for_chart(0, DAY_MS), Grain::Hour);
        assert_eq!(Grain::for_chart(0, 7 * DAY_MS), Grain::Day);
        for g in Grain::ALL {
            assert_eq!(Grain::parse(g.as_str()), Some(g));
        }
    }

    /// Every minute of a range is covered by exactly one span, each span is aligned to its grain, and there are
    /// at most five.
    #[test]
    fn a_cover_is_exact_aligned_and_short() {
        let cases = [
            (0, DAY_MS),
            (7 * MINUTE_MS, 7 * MINUTE_MS),
            (5 * MINUTE_MS, 17 * MINUTE_MS),
            (HOUR_MS - MINUTE_MS, 2 * HOUR_MS + MINUTE_MS),
            (
                DAY_MS - 3 * HOUR_MS - 7 * MINUTE_MS,
                3 * DAY_MS + 2 * HOUR_MS + 5 * MINUTE_MS + 13,
            ),
            (12_345_678, 31 * DAY_MS + 987_654),
            (DAY_MS + 30 * MINUTE_MS, DAY_MS + 50 * MINUTE_MS),
        ];
        for (from, until) in cases {
            let spans = cover(from, until);
            assert!(spans.len() <= 5, "{spans:?}");
            let mut next = Grain::Minute.floor(from);
            // A non-empty range ending inside a minute includes that minute.
            assert_eq!(spans.is_empty(), from >= until, "{from}..{until}");
            for s in &spans {
                assert_eq!(s.from, next, "{from}..{until}: {spans:?}");
                assert!(s.from < s.until);
                assert_eq!(s.grain.floor(s.from), s.from);
                assert_eq!(s.grain.floor(s.until), s.until);
                next = s.until;
            }
            if !spans.is_empty() {
                assert_eq!(
                    next,
                    Grain::Minute.ceil(until),
                    "{from}..{until}: {spans:?}"
                );
            }
        }
        assert_eq!(
            cover(DAY_MS - HOUR_MS, 2 * DAY_MS + HOUR_MS)
                .iter()
                .map(|s| s.grain)
                .collect::<Vec<_>>(),
            [Grain::Hour, Grain::Day, Grain::Hour]
        );
        assert!(cover(5, 5).is_empty());
        // A series per hour reads no day rows; per minute, only minute rows.
        let hourly = cover_up_to(DAY_MS - 5 * MINUTE_MS, 3 * DAY_MS, Grain::Hour);
        assert!(hourly.iter().all(|s| s.grain <= Grain::Hour), "{hourly:?}");
        assert_eq!(hourly.first().map(|s| s.from), Some(DAY_MS - 5 * MINUTE_MS));
        assert_eq!(hourly.last().map(|s| s.until), Some(3 * DAY_MS));
        assert_eq!(
            cover_up_to(0, DAY_MS, Grain::Minute),
            [Span {
                grain: Grain::Minute,
                from: 0,
                until: DAY_MS
            }]
        );
    }
}
