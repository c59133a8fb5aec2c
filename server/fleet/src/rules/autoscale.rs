//! Autoscaling: how many replicas a deployment should have, from its load, in the style of Kubernetes' HPA with
//! stabilisation windows. No clock: the time comes in with each [`Signal`].
//!
//! Each call computes a raw recommendation, `ceil(demand / target_per_replica)`, raised to one more than the
//! current count when the KV cache is over 90% full and the demand alone would not add a replica (full caches mean
//! requests queue whatever their count says). It is clamped to `[min, max]`, and to at least 1 while a request is
//! waiting or one was seen within `idle_to_zero_ms`. Then:
//!
//! - **Up:** the lowest recommendation of the last `up_window_ms`, if above the current count: a single spike does
//!   not add replicas unless the window is 0.
//! - **Down:** the highest recommendation of the last `down_window_ms`, if below the current count: demand that
//!   oscillates around a threshold keeps the count where it is.
//! - **To zero:** only when `min` is 0, `idle_to_zero_ms` > 0 and no request came for that long; the idle period is
//!   the stabilisation, so no window delays it further.
//! - **From zero:** demand at zero replicas (requests the gateway holds) scales up at once, whatever the windows.
//!
//! Every decision says why in words: "2 requests per replica target; 7 running or waiting -> 4".

use serde::{Deserialize, Serialize};

/// A deployment's autoscaling settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub min: u32,
    /// 0 keeps the deployment at zero replicas.
    pub max: u32,
    /// Demand one replica should carry (running + waiting requests). Zero, negative or not a number counts as 1.
    pub target_per_replica: f64,
    pub up_window_ms: i64,
    pub down_window_ms: i64,
    /// 0 = never scale to zero.
    pub idle_to_zero_ms: i64,
}

/// What the controller observes now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub now_ms: i64,
    /// Running + waiting across ready replicas (engines' `vllm:num_requests_running` +
    /// `vllm:num_requests_waiting`), plus requests the gateway holds waiting for a replica.
    pub demand: f64,
    /// Max KV-cache usage fraction across replicas, 0..1.
    pub kv_cache: f64,
    /// When the gateway last saw a request for this model (None = never).
    pub last_request_ms: Option<i64>,
    /// Replicas now (desired count last decided, or observed).
    pub current: u32,
}

/// How many replicas, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub replicas: u32,
    pub reason: String,
}

/// Keeps the recent recommendations of one deployment; one per deployment, kept across calls.
#[derive(Debug, Clone, Default)]
pub struct Autoscaler {
    /// (recommendation, the last time it was made): one entry per distinct value, which is all a window's minimum
    /// or maximum needs. Entries older than the larger window are dropped, so the length is bounded by the distinct
    /// recommendations of one window (and by `MAX_HISTORY` in any case).
    history: Vec<(u32, i64)>,
}

/// A hard bound on the history, whatever the windows and the values.
const MAX_HISTORY: usize = 256;

/// KV-cache usage above which one more replica is recommended.
pub const KV_CACHE_FULL: f64 = 0.9;

impl Autoscaler {
    /// The replica count for `policy` given `s`; records the raw recommendation for later windows.
    pub fn recommend(&mut self, policy: &Policy, s: &Signal) -> Decision {
        let now = s.now_ms;
        let current = s.current;
        let target = if policy.target_per_replica.is_finite() && policy.target_per_replica > 0.0 {
            policy.target_per_replica
        } else {
            1.0
        };
        let demand = if s.demand.is_finite() && s.demand > 0.0 {
            s.demand
        } else {
            0.0
        };

        // The raw recommendation.
        let by_demand = (demand / target).ceil().min(f64::from(u32::MAX)) as u32;
        let mut reason = format!(
            "{} per replica target; {} running or waiting -> {by_demand}",
            requests(target),
            number(demand)
        );
        let mut raw = by_demand;
        if current > 0 && s.kv_cache > KV_CACHE_FULL && raw <= current {
            raw = current.saturating_add(1);
            reason.push_str(&format!(
                "; KV cache {:.0}% full -> {raw}",
                s.kv_cache.min(1.0) * 100.0
            ));
        }

        // Bounds.
        let idle_ms = s.last_request_ms.map(|at| now.saturating_sub(at));
        let zero_ok = policy.min == 0
            && policy.idle_to_zero_ms > 0
            && demand == 0.0
            && idle_ms.is_none_or(|idle| idle >= policy.idle_to_zero_ms);
        let hi = policy.max;
        let lo = if zero_ok { 0 } else { policy.min.max(1) }.min(hi);
        let rec = raw.clamp(lo, hi);
        self.remember(policy, now, rec);

        if zero_ok {
            let why = match idle_ms {
                Some(idle) => format!("idle for {} -> 0", duration(idle)),
                None => "no request yet -> 0".to_string(),
            };
            return Decision {
                replicas: 0,
                reason: why,
            };
        }
        if raw > hi {
            reason.push_str(&format!("; held at max {hi}"));
        } else if raw < lo {
            if lo == policy.min {
                reason.push_str(&format!("; raised to min {lo}"));
            } else if policy.idle_to_zero_ms <= 0 {
                reason.push_str("; kept at 1 (scale to zero is off)");
            } else {
                let ago = idle_ms.map_or_else(|| "never".to_string(), |i| duration(i) + " ago");
                reason.push_str(&format!(
                    "; kept at 1 (last request {ago}; to zero after {} idle)",
                    duration(policy.idle_to_zero_ms)
                ));
            }
        }

        if current == 0 && demand > 0.0 {
            return Decision {
                replicas: rec,
                reason: format!("woken from zero: {reason}"),
            };
        }

        // Stabilisation.
        let up = self
            .lowest_since(now - policy.up_window_ms.max(0))
            .unwrap_or(rec);
        let down = self
            .highest_since(now - policy.down_window_ms.max(0))
            .unwrap_or(rec);
        let stable = if up > current {
            up
        } else if down < current {
            down
        } else {
            current
        };
        // The bounds again: min or max may have changed since the remembered recommendations.
        let replicas = stable.clamp(lo, hi);
        if replicas == stable && stable != rec {
            let (direction, window) = if rec > current {
                ("up", policy.up_window_ms)
            } else {
                ("down", policy.down_window_ms)
            };
            let window = duration(window);
            if stable == current {
                reason.push_str(&format!(
                    "; held at {current} for the {window} scale-{direction} window"
                ));
            } else {
                reason.push_str(&format!(
                    "; {stable} for the {window} scale-{direction} window"
                ));
            }
        } else if replicas < stable && raw <= hi {
            reason.push_str(&format!("; held at max {hi}"));
        } else if replicas > stable && raw >= lo {
            reason.push_str(&format!("; raised to min {lo}"));
        }
        Decision { replicas, reason }
    }

    fn remember(&mut self, policy: &Policy, now: i64, rec: u32) {
        let keep = policy.up_window_ms.max(policy.down_window_ms).max(0);
        let oldest = now.saturating_sub(keep);
        self.history
            .retain(|&(value, at)| at >= oldest && value != rec);
        if self.history.len() >= MAX_HISTORY {
            if let Some(first) = self
                .history
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(i, _)| i)
            {
                self.history.swap_remove(first);
            }
        }
        self.history.push((rec, now));
    }

    fn lowest_since(&self, since: i64) -> Option<u32> {
        self.history
            .iter()
            .filter(|(_, at)| *at >= since)
            .map(|(v, _)| *v)
            .min()
    }

    fn highest_since(&self, since: i64) -> Option<u32> {
        self.history
            .iter()
            .filter(|(_, at)| *at >= since)
            .map(|(v, _)| *v)
            .max()
    }
}

/// "2 requests", "1 request", "2.5 requests".
fn requests(target: f64) -> String {
    if target == 1.0 {
        "1 request".into()
    } else {
        format!("{} requests", number(target))
    }
}

/// Whole numbers without decimals, others with up to two.
fn number(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 && x.abs() < 1e15 {
        format!("{}", x.round() as i64)
    } else {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// "250 ms", "30 s", "5 min", "5 min 30 s", "1 h", "1 h 5 min" (rounded down).
fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    let (h, m, s) = (ms / 3_600_000, ms % 3_600_000 / 60_000, ms % 60_000 / 1000);
    match (h, m, s) {
        (0, 0, 0) => format!("{ms} ms"),
        (0, 0, s) => format!("{s} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;
    const MIN: i64 = 60 * S;

    fn policy() -> Policy {
        Policy {
            min: 1,
            max: 10,
            target_per_replica: 2.0,
            up_window_ms: 0,
            down_window_ms: 0,
            idle_to_zero_ms: 0,
        }
    }

    fn signal(now_ms: i64, demand: f64, current: u32) -> Signal {
        Signal {
            now_ms,
            demand,
            kv_cache: 0.0,
            last_request_ms: Some(now_ms),
            current,
        }
    }

    fn decide(p: &Policy, s: &Signal) -> Decision {
        Autoscaler::default().recommend(p, s)
    }

    fn d(replicas: u32, reason: &str) -> Decision {
        Decision {
            replicas,
            reason: reason.into(),
        }
    }

    #[test]
    fn one_call_without_windows() {
        let cases: Vec<(&str, Policy, Signal, Decision)> = vec![
            (
                "demand over target",
                policy(),
                signal(0, 7.0, 1),
                d(
                    4,
                    "2 requests per replica target; 7 running or waiting -> 4",
                ),
            ),
            (
                "down at once without a window",
                policy(),
                signal(0, 2.0, 5),
                d(
                    1,
                    "2 requests per replica target; 2 running or waiting -> 1",
                ),
            ),
            (
                "max",
                Policy { max: 4, ..policy() },
                signal(0, 20.0, 2),
                d(
                    4,
                    "2 requests per replica target; 20 running or waiting -> 10; held at max 4",
                ),
            ),
            (
                "min",
                Policy { min: 2, ..policy() },
                signal(0, 1.0, 2),
                d(
                    2,
                    "2 requests per replica target; 1 running or waiting -> 1; raised to min 2",
                ),
            ),
            (
                "fractional figures",
                Policy {
                    target_per_replica: 2.5,
                    ..policy()
                },
                signal(0, 5.5, 1),
                d(
                    3,
                    "2.5 requests per replica target; 5.5 running or waiting -> 3",
                ),
            ),
            (
                "a bad target counts as 1",
                Policy {
                    target_per_replica: f64::NAN,
                    ..policy()
                },
                signal(0, 3.0, 1),
                d(3, "1 request per replica target; 3 running or waiting -> 3"),
            ),
            (
                "max 0 keeps it at zero",
                Policy {
                    min: 0,
                    max: 0,
                    ..policy()
                },
                signal(0, 3.0, 1),
                d(
                    0,
                    "2 requests per replica target; 3 running or waiting -> 2; held at max 0",
                ),
            ),
        ];
        for (name, p, s, want) in cases {
            assert_eq!(decide(&p, &s), want, "{name}");
        }
    }

    #[test]
    fn kv_cache_nudge() {
        let p = policy();
        let full = Signal {
            kv_cache: 0.95,
            ..signal(0, 4.0, 2)
        };
        assert_eq!(
            decide(&p, &full),
            d(
                3,
                "2 requests per replica target; 4 running or waiting -> 2; KV cache 95% full -> 3"
            )
        );
        // Also when the demand alone would scale down: full caches are no time to remove one.
        let fewer = Signal {
            demand: 1.0,
            ..full.clone()
        };
        assert_eq!(decide(&p, &fewer).replicas, 3);
        // At 90% exactly: no nudge.
        let at_90 = Signal {
            kv_cache: 0.9,
            ..full.clone()
        };
        assert_eq!(decide(&p, &at_90).replicas, 2);
        // The demand already adds a replica: no second one.
        let more = Signal {
            demand: 6.0,
            ..full.clone()
        };
        assert_eq!(
            decide(&p, &more),
            d(
                3,
                "2 requests per replica target; 6 running or waiting -> 3"
            )
        );
        // Bounded by max.
        let capped = Policy { max: 2, ..policy() };
        assert_eq!(
            decide(&capped, &full),
            d(
                2,
                "2 requests per replica target; 4 running or waiting -> 2; KV cache 95% full -> 3; held at max 2"
            )
        );
    }

    #[test]
    fn oscillating_demand_does_not_flap() {
        let p = Policy {
            down_window_ms: 5 * MIN,
            ..policy()
        };
        let mut a = Autoscaler::default();
        let mut current = 2;
        let mut counts = Vec::new();
        // Demand crosses the 2 -> 3 replica threshold every 15 s for 10 minutes.
        for step in 0..40 {
            let demand = if step % 2 == 0 { 5.0 } else { 4.0 };
            current = a
                .recommend(&p, &signal(step * 15 * S, demand, current))
                .replicas;
            counts.push(current);
        }
        assert!(counts.iter().all(|&c| c == 3), "{counts:?}");
        // Demand falls for good: down only once the window holds nothing higher.
        let held = a.recommend(&p, &signal(40 * 15 * S, 2.0, 3));
        assert_eq!(
            held,
            d(
                3,
                "2 requests per replica target; 2 running or waiting -> 1; held at 3 for the 5 min scale-down window"
            )
        );
        let last_high = 38 * 15 * S;
        let mut t = 41 * 15 * S;
        while t <= last_high + 5 * MIN {
            assert_eq!(a.recommend(&p, &signal(t, 2.0, 3)).replicas, 3, "at {t}");
            t += 15 * S;
        }
        // Then to the highest left in the window (the 2s until 5 minutes after the last), then 1.
        assert_eq!(a.recommend(&p, &signal(t, 2.0, 3)).replicas, 2);
        assert_eq!(a.recommend(&p, &signal(t + 15 * S, 2.0, 2)).replicas, 1);
    }

    #[test]
    fn down_window_steps_to_the_highest_recent() {
        let p = Policy {
            down_window_ms: MIN,
            ..policy()
        };
        let mut a = Autoscaler::default();
        assert_eq!(a.recommend(&p, &signal(0, 8.0, 4)).replicas, 4);
        assert_eq!(a.recommend(&p, &signal(30 * S, 4.0, 4)).replicas, 4);
        // At 61 s the 4 has left the window; the 2 from 30 s has not.
        assert_eq!(
            a.recommend(&p, &signal(61 * S, 2.0, 4)),
            d(
                2,
                "2 requests per replica target; 2 running or waiting -> 1; 2 for the 1 min scale-down window"
            )
        );
    }

    #[test]
    fn a_spike_is_ignored_with_an_up_window() {
        let p = Policy {
            up_window_ms: MIN,
            ..policy()
        };
        let mut a = Autoscaler::default();
        for t in (0..60).step_by(10) {
            assert_eq!(a.recommend(&p, &signal(t * S, 2.0, 1)).replicas, 1);
        }
        assert_eq!(
            a.recommend(&p, &signal(60 * S, 20.0, 1)),
            d(
                1,
                "2 requests per replica target; 20 running or waiting -> 10; held at 1 for the 1 min scale-up window"
            )
        );
        assert_eq!(a.recommend(&p, &signal(70 * S, 2.0, 1)).replicas, 1);
        // Sustained demand: up once the window holds nothing lower, to the lowest of the window.
        let mut current = 1;
        for t in (80..=130).step_by(10) {
            current = a.recommend(&p, &signal(t * S, 8.0, current)).replicas;
            assert_eq!(current, 1, "at {t} s");
        }
        let up = a.recommend(&p, &signal(140 * S, 8.0, 1));
        assert_eq!(
            up,
            d(
                4,
                "2 requests per replica target; 8 running or waiting -> 4"
            )
        );
        // Without a window, the spike scales at once.
        let mut b = Autoscaler::default();
        assert_eq!(b.recommend(&policy(), &signal(0, 2.0, 1)).replicas, 1);
        assert_eq!(b.recommend(&policy(), &signal(S, 20.0, 1)).replicas, 10);
    }

    #[test]
    fn up_window_goes_to_the_lowest_recent() {
        let p = Policy {
            up_window_ms: MIN,
            ..policy()
        };
        let mut a = Autoscaler::default();
        a.recommend(&p, &signal(0, 2.0, 1));
        a.recommend(&p, &signal(30 * S, 6.0, 1));
        assert_eq!(
            a.recommend(&p, &signal(61 * S, 12.0, 1)),
            d(
                3,
                "2 requests per replica target; 12 running or waiting -> 6; 3 for the 1 min scale-up window"
            )
        );
    }

    #[test]
    fn scale_to_zero_after_idle_and_wake_at_once() {
        let p = Policy {
            min: 0,
            idle_to_zero_ms: 5 * MIN,
            up_window_ms: 10 * MIN,
            down_window_ms: 10 * MIN,
            ..policy()
        };
        let mut a = Autoscaler::default();
        let quiet = |now: i64, current: u32| Signal {
            last_request_ms: Some(0),
            ..signal(now, 0.0, current)
        };
        assert_eq!(a.recommend(&p, &signal(0, 3.0, 2)).replicas, 2);
        assert_eq!(
            a.recommend(&p, &quiet(4 * MIN + 30 * S, 2)),
            d(
                2,
                "2 requests per replica target; 0 running or waiting -> 0; kept at 1 (last request 4 min 30 s ago; to zero after 5 min idle); held at 2 for the 10 min scale-down window"
            )
        );
        assert_eq!(
            a.recommend(&p, &quiet(5 * MIN, 2)),
            d(0, "idle for 5 min -> 0")
        );
        assert_eq!(
            a.recommend(&p, &quiet(6 * MIN, 0)),
            d(0, "idle for 6 min -> 0")
        );
        // A request waits: up at once, whatever the up window.
        let woke = a.recommend(
            &p,
            &Signal {
                last_request_ms: Some(7 * MIN),
                ..signal(7 * MIN, 3.0, 0)
            },
        );
        assert_eq!(
            woke,
            d(
                2,
                "woken from zero: 2 requests per replica target; 3 running or waiting -> 2"
            )
        );
        // Never seen a request: zero is fine.
        assert_eq!(
            decide(
                &p,
                &Signal {
                    last_request_ms: None,
                    ..signal(0, 0.0, 1)
                }
            ),
            d(0, "no request yet -> 0")
        );
        // A request seen recently but none waiting, at zero: one replica, so the next one finds it.
        assert_eq!(
            decide(&p, &signal(MIN, 0.0, 0)),
            d(
                1,
                "2 requests per replica target; 0 running or waiting -> 0; kept at 1 (last request 0 ms ago; to zero after 5 min idle)"
            )
        );
    }

    #[test]
    fn zero_needs_min_0_and_an_idle_period() {
        let long_ago = |p: &Policy| {
            decide(
                p,
                &Signal {
                    last_request_ms: Some(0),
                    ..signal(60 * MIN, 0.0, 1)
                },
            )
        };
        let off = Policy {
            min: 0,
            idle_to_zero_ms: 0,
            ..policy()
        };
        assert_eq!(
            long_ago(&off),
            d(
                1,
                "2 requests per replica target; 0 running or waiting -> 0; kept at 1 (scale to zero is off)"
            )
        );
        let min_1 = Policy {
            min: 1,
            idle_to_zero_ms: MIN,
            ..policy()
        };
        assert_eq!(
            long_ago(&min_1),
            d(
                1,
                "2 requests per replica target; 0 running or waiting -> 0; raised to min 1"
            )
        );
        // Idle long enough, but a request is waiting: never zero.
        let on = Policy {
            min: 0,
            idle_to_zero_ms: MIN,
            ..policy()
        };
        let waiting = decide(
            &on,
            &Signal {
                last_request_ms: Some(0),
                ..signal(60 * MIN, 0.5, 1)
            },
        );
        assert_eq!(waiting.replicas, 1);
    }

    #[test]
    fn bounds_changed_since_the_window_apply_at_once() {
        let p = Policy {
            down_window_ms: 10 * MIN,
            up_window_ms: 10 * MIN,
            ..policy()
        };
        let mut a = Autoscaler::default();
        assert_eq!(a.recommend(&p, &signal(0, 16.0, 8)).replicas, 8);
        let lower = Policy {
            max: 4,
            ..p.clone()
        };
        assert_eq!(
            a.recommend(&lower, &signal(S, 16.0, 8)),
            d(
                4,
                "2 requests per replica target; 16 running or waiting -> 8; held at max 4"
            )
        );
        let higher = Policy { min: 6, ..p };
        assert_eq!(a.recommend(&higher, &signal(2 * S, 2.0, 4)).replicas, 6);
    }

    #[test]
    fn history_stays_bounded() {
        let p = Policy {
            max: 100_000,
            up_window_ms: 10 * MIN,
            down_window_ms: 10 * MIN,
            ..policy()
        };
        let mut a = Autoscaler::default();
        let mut current = 1;
        for step in 0..20_000i64 {
            let demand = ((step * 7919) % 1000) as f64;
            current = a
                .recommend(&p, &signal(step * 100, demand, current))
                .replicas;
            assert!(a.history.len() <= MAX_HISTORY);
        }
        // A steady signal keeps one entry.
        let mut b = Autoscaler::default();
        for step in 0..1000 {
            b.recommend(&p, &signal(step * S, 4.0, 2));
        }
        assert_eq!(b.history.len(), 1);
    }

    #[test]
    fn durations_and_numbers() {
        assert_eq!(duration(250), "250 ms");
        assert_eq!(duration(30 * S), "30 s");
        assert_eq!(duration(5 * MIN), "5 min");
        assert_eq!(duration(5 * MIN + 30 * S + 10), "5 min 30 s");
        assert_eq!(duration(60 * MIN), "1 h");
        assert_eq!(duration(65 * MIN + 5 * S), "1 h 5 min");
        assert_eq!(number(7.0), "7");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(1.0 / 3.0), "0.33");
    }
}
