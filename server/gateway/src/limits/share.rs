//! One replica's share of a subscription's limits, enforced in memory while the shared counters (Redis) cannot be
//! reached: with `n` live replicas each admits at most `limit / n` per window, so together they stay within the
//! limit whatever the load balancer does. A limit smaller than the replica count still admits one request per
//! replica (rounding down to nothing would turn the outage into a refusal of everything).
//!
//! The monthly quota is shared differently: what is left of it when the outage began (`month_base`, the month's
//! usage records) is divided, not the whole quota, since the month's earlier usage is already counted.

use tollgate_domain::grant::Limits;

/// The limits one of `replicas` gateway replicas enforces on its own.
pub fn share(limits: &Limits, replicas: u32, month_base: u64) -> Limits {
    let n = replicas.max(1);
    let per_window = |v: u32| if v == 0 { 0 } else { (v / n).max(1) };
    Limits {
        requests_per_minute: limits.requests_per_minute.map(per_window),
        tokens_per_minute: limits.tokens_per_minute.map(per_window),
        max_concurrent: limits.max_concurrent.map(per_window),
        monthly_tokens: limits
            .monthly_tokens
            .map(|m| month_base.saturating_add(m.saturating_sub(month_base) / u64::from(n))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            requests_per_minute: Some(3),
            tokens_per_minute: Some(10_000),
            max_concurrent: Some(8),
            monthly_tokens: Some(1_000_000),
        }
    }

    #[test]
    fn one_replica_keeps_the_whole_limit() {
        assert_eq!(share(&limits(), 1, 0), limits());
        assert_eq!(
            share(&limits(), 0, 0),
            limits(),
            "no heartbeat yet counts as one"
        );
    }

    #[test]
    fn replicas_divide_each_window_limit_rounding_down() {
        let s = share(&limits(), 2, 0);
        assert_eq!(
            s.requests_per_minute,
            Some(1),
            "3 / 2: together at most 2, never 4"
        );
        assert_eq!(s.tokens_per_minute, Some(5_000));
        assert_eq!(s.max_concurrent, Some(4));
        assert_eq!(s.monthly_tokens, Some(500_000));
    }

    #[test]
    fn a_limit_below_the_replica_count_admits_one_each_and_zero_stays_zero() {
        let mut l = limits();
        l.requests_per_minute = Some(0);
        let s = share(&l, 5, 0);
        assert_eq!(s.requests_per_minute, Some(0));
        assert_eq!(s.max_concurrent, Some(1));
        assert_eq!(
            share(&Limits::default(), 3, 0),
            Limits::default(),
            "no limit stays no limit"
        );
    }

    #[test]
    fn the_monthly_quota_divides_what_is_left_of_it() {
        // 600k of 1M used before the outage: 400k left, 200k each for two replicas.
        assert_eq!(share(&limits(), 2, 600_000).monthly_tokens, Some(800_000));
        // Already over: nothing more is admitted.
        assert_eq!(
            share(&limits(), 2, 1_200_000).monthly_tokens,
            Some(1_200_000)
        );
    }
}
