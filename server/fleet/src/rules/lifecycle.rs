//! A replica's life and a deployment's replica count, as pure decisions: given what the controller saw of a
//! replica this pass (`Facts`), `advance` moves it along its state machine and says what IO the controller must
//! do next (`Step`); `plan` says which replicas a deployment must add, drain or drop to reach its desired count,
//! rolling over to a new generation of engine arguments without losing serving capacity.
//!
//! Level-triggered: neither function is told why it runs. Run twice on the same facts, they decide the same.

use crate::model::{Deployment, Replica};
use tollgate_domain::fleet::ReplicaState;

/// How long things may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A replica that has not answered `/health` this long after starting has failed (vLLM loads weights first).
    pub start_timeout_ms: i64,
    /// A draining replica is stopped by then even if requests are still running on it.
    pub drain_grace_ms: i64,
    /// The first restart waits this long; each further one twice as long, up to `backoff_max_ms`.
    pub backoff_base_ms: i64,
    pub backoff_max_ms: i64,
    /// Consecutive failed health probes that make a ready replica failed.
    pub unhealthy_after: u32,
    /// Stopped replicas stay listed this long, then are forgotten (their events stay).
    pub keep_stopped_ms: i64,
    /// A draining replica stays up at least this long even when idle, so every server's gateway has taken it out
    /// of its routes (they follow the routes revision about once a second) before it stops.
    pub drain_settle_ms: i64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            start_timeout_ms: 15 * 60_000,
            drain_grace_ms: 30_000,
            backoff_base_ms: 1_000,
            backoff_max_ms: 60_000,
            unhealthy_after: 3,
            keep_stopped_ms: 10 * 60_000,
            drain_settle_ms: 3_000,
        }
    }
}

impl Timing {
    /// The wait before restart number `restarts` (1 = the first).
    pub fn backoff_ms(&self, restarts: u32) -> i64 {
        let doublings = restarts.saturating_sub(1).min(30);
        self.backoff_base_ms
            .saturating_mul(1_i64 << doublings)
            .min(self.backoff_max_ms)
    }
}

/// The replica's process, as the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Process {
    Running,
    /// It exists but does not serve, and the driver says why in words a person reads: waiting for a node (with
    /// the scheduler's reason), pulling its image, crash-looping. Drivers whose platform restarts engines itself
    /// (Kubernetes) report a crash loop this way rather than as `Exited`, so that the platform's restart and
    /// the fleet's do not fight.
    Waiting(String),
    /// It ended; the words say how (exit status, last log line).
    Exited(String),
    /// Never started, or the driver does not know the handle (nothing to observe).
    None,
}

/// What the controller saw of one replica this pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub process: Process,
    /// The last `/health` probe: None when not probed (no address yet).
    pub healthy: Option<bool>,
    /// Failed probes in a row.
    pub health_failures: u32,
    /// Requests running or waiting on it, from its metrics (None: unknown).
    pub busy: Option<f64>,
}

impl Facts {
    pub fn none() -> Self {
        Self {
            process: Process::None,
            healthy: None,
            health_failures: 0,
            busy: None,
        }
    }
}

/// The IO the controller does for a replica after `advance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing changed.
    Nothing,
    /// Its fields changed; write them.
    Changed,
    /// Place it if it holds no GPUs, then start it through the driver.
    Start,
    /// Stop its old process (if any), then start it again on the GPUs it holds.
    Restart,
    /// Stop it through the driver; it becomes Stopped and frees its GPUs.
    Stop,
    /// Forget it.
    Remove,
}

/// Moves `r` along its state machine.
pub fn advance(r: &mut Replica, facts: &Facts, now: i64, t: &Timing) -> Step {
    use ReplicaState::*;
    // A replica that should be running but whose process nobody knows (its controller, and the simulator's
    // engines with it, went away) is as good as exited.
    let exited = match &facts.process {
        Process::Exited(how) => Some(how.as_str()),
        Process::None => Some("not running any more"),
        Process::Running | Process::Waiting(_) => None,
    };
    match r.state {
        Pending => {
            if r.next_attempt_at.is_none_or(|at| now >= at) {
                Step::Start
            } else {
                Step::Nothing
            }
        }
        Starting => {
            if let Some(how) = exited {
                fail(r, format!("exited while starting: {how}"), now, t);
                Step::Changed
            } else if facts.healthy == Some(true) {
                r.enter(Ready, now);
                r.reason = None;
                Step::Changed
            } else if now - r.since > t.start_timeout_ms {
                fail(
                    r,
                    format!(
                        "did not answer /health within {} s of starting",
                        t.start_timeout_ms / 1000
                    ),
                    now,
                    t,
                );
                Step::Changed
            } else if let Process::Waiting(why) = &facts.process {
                if r.reason.as_deref() == Some(why.as_str()) {
                    Step::Nothing
                } else {
                    r.reason = Some(why.clone());
                    Step::Changed
                }
            } else {
                Step::Nothing
            }
        }
        Ready => {
            if let Some(how) = exited {
                fail(r, format!("exited: {how}"), now, t);
                Step::Changed
            } else if facts.health_failures >= t.unhealthy_after {
                let error = match &facts.process {
                    Process::Waiting(why) => format!(
                        "stopped serving ({} checks in a row): {why}",
                        facts.health_failures
                    ),
                    _ => format!(
                        "stopped answering /health ({} probes in a row failed)",
                        facts.health_failures
                    ),
                };
                fail(r, error, now, t);
                Step::Changed
            } else {
                Step::Nothing
            }
        }
        Failed => {
            if r.next_attempt_at.is_none_or(|at| now >= at) {
                Step::Restart
            } else {
                Step::Nothing
            }
        }
        Draining => {
            let settled = now - r.since >= t.drain_settle_ms;
            let idle = settled && facts.busy.is_some_and(|b| b <= 0.0);
            let gone = facts.process != Process::Running;
            if idle || gone || r.drain_until.is_none_or(|until| now >= until) {
                Step::Stop
            } else {
                Step::Nothing
            }
        }
        Stopped => {
            if now - r.since > t.keep_stopped_ms {
                Step::Remove
            } else {
                Step::Nothing
            }
        }
    }
}

/// Marks a replica failed and schedules its restart with exponential backoff.
pub fn fail(r: &mut Replica, error: String, now: i64, t: &Timing) {
    r.restarts = r.restarts.saturating_add(1);
    let wait = t.backoff_ms(r.restarts);
    r.reason = Some(format!("restarting in {} s", (wait + 999) / 1000));
    r.last_error = Some(error);
    r.next_attempt_at = Some(now + wait);
    r.enter(ReplicaState::Failed, now);
}

/// Takes a replica out of the routes; it is stopped once idle or at `now + grace`.
pub fn drain(r: &mut Replica, why: &str, now: i64, t: &Timing) {
    r.enter(ReplicaState::Draining, now);
    r.drain_until = Some(now + t.drain_grace_ms);
    r.reason = Some(why.to_string());
}

/// What a deployment must do about its replica count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScalePlan {
    /// New replicas to create (pending, at the current generation).
    pub add: u32,
    /// Replicas to drain, with why.
    pub drain: Vec<(String, String)>,
    /// Replicas holding no GPUs to stop at once (nothing runs there).
    pub drop: Vec<String>,
    /// Nothing is left of a deployment being deleted: remove it.
    pub delete_deployment: bool,
}

/// The replicas to add, drain or drop so that `d` has `d.desired` replicas of its current generation (none when
/// it is being deleted). During a rolling update, replicas of older generations are drained only as new ones
/// become ready, so serving capacity stays; when the new ones cannot get GPUs while the old ones hold them, one
/// old replica at a time makes room.
pub fn plan(d: &Deployment, replicas: &[Replica]) -> ScalePlan {
    let target = if d.deleting { 0 } else { d.desired } as usize;
    let mine = || replicas.iter().filter(|r| r.deployment_id == d.id);
    let live = |r: &&Replica| r.state.is_live();
    let new: Vec<&Replica> = mine()
        .filter(live)
        .filter(|r| r.generation >= d.generation)
        .collect();
    let old: Vec<&Replica> = mine()
        .filter(live)
        .filter(|r| r.generation < d.generation)
        .collect();
    let mut out = ScalePlan {
        add: u32::try_from(target.saturating_sub(new.len())).unwrap_or(0),
        ..ScalePlan::default()
    };
    let remove = |r: &Replica, why: &str, out: &mut ScalePlan| {
        if r.state == ReplicaState::Pending && r.gpus.is_empty() {
            out.drop.push(r.id.clone());
        } else {
            out.drain.push((r.id.clone(), why.to_string()));
        }
    };
    // Too many of the current generation: the least useful go first.
    if new.len() > target {
        let why = if d.deleting {
            "the deployment is being deleted"
        } else {
            "scaled down"
        };
        for r in by_least_useful(&new).into_iter().take(new.len() - target) {
            remove(r, why, &mut out);
        }
    }
    // Older generations: keep only what the ready new ones do not yet replace.
    if !old.is_empty() {
        let ready_new = new
            .iter()
            .filter(|r| r.state == ReplicaState::Ready)
            .count();
        let mut keep = target.saturating_sub(ready_new);
        let new_blocked = new
            .iter()
            .any(|r| r.state == ReplicaState::Pending && r.gpus.is_empty())
            && !new.iter().any(|r| r.state == ReplicaState::Starting);
        // One old replica makes room for a new one only while the deployment serves at full strength, so the
        // dip is one replica at most (not every old replica, pass after pass, while the new ones still load).
        let ready_old = old
            .iter()
            .filter(|r| r.state == ReplicaState::Ready)
            .count();
        let draining = mine().any(|r| r.state == ReplicaState::Draining);
        if new_blocked
            && !draining
            && ready_new + ready_old >= target
            && keep > 0
            && keep >= old.len()
        {
            keep = old.len() - 1;
        }
        let why = if d.deleting {
            "the deployment is being deleted"
        } else {
            "replaced by the new engine arguments"
        };
        for r in by_least_useful(&old)
            .into_iter()
            .take(old.len().saturating_sub(keep))
        {
            remove(r, why, &mut out);
        }
    }
    out.delete_deployment = d.deleting
        && mine().all(|r| r.state == ReplicaState::Stopped)
        && out.drain.is_empty()
        && out.drop.is_empty();
    out
}

/// Pending first, then failed, starting, and ready last (newest first within a state).
fn by_least_useful<'a>(rs: &[&'a Replica]) -> Vec<&'a Replica> {
    let rank = |s: ReplicaState| match s {
        ReplicaState::Pending => 0,
        ReplicaState::Failed => 1,
        ReplicaState::Starting => 2,
        _ => 3,
    };
    let mut v = rs.to_vec();
    v.sort_by(|a, b| {
        rank(a.state)
            .cmp(&rank(b.state))
            .then(b.created_at.cmp(&a.created_at))
            .then(b.id.cmp(&a.id))
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_domain::fleet::DeploymentInput;
    use ReplicaState::*;

    const T: Timing = Timing {
        start_timeout_ms: 60_000,
        drain_grace_ms: 30_000,
        backoff_base_ms: 1_000,
        backoff_max_ms: 8_000,
        unhealthy_after: 3,
        keep_stopped_ms: 600_000,
        drain_settle_ms: 2_000,
    };

    fn replica(id: &str, state: ReplicaState, generation: u32, created: i64) -> Replica {
        let mut r = Replica::new(id.into(), "d".into(), generation, created);
        r.state = state;
        if state != Pending {
            r.gpus = vec![0];
        }
        r
    }

    fn deployment(desired: u32, generation: u32) -> Deployment {
        Deployment {
            id: "d".into(),
            spec: serde_json::from_str::<DeploymentInput>(r#"{"model_id":"m"}"#).unwrap(),
            generation,
            desired,
            deleting: false,
            condition: None,
            scale_reason: None,
        }
    }

    fn facts(process: Process, healthy: Option<bool>, failures: u32, busy: Option<f64>) -> Facts {
        Facts {
            process,
            healthy,
            health_failures: failures,
            busy,
        }
    }

    #[test]
    fn a_waiting_replica_shows_why_and_fails_only_at_the_start_timeout() {
        let mut r = replica("r", Starting, 1, 0);
        let pending = facts(
            Process::Waiting("waiting for a node: 0/3 nodes have a free GPU".into()),
            Some(false),
            1,
            None,
        );
        assert_eq!(advance(&mut r, &pending, 10, &T), Step::Changed);
        assert_eq!(
            r.reason.as_deref(),
            Some("waiting for a node: 0/3 nodes have a free GPU")
        );
        assert_eq!(r.state, Starting);
        // The same words again change nothing (nothing to write).
        assert_eq!(advance(&mut r, &pending, 20, &T), Step::Nothing);
        let looping = facts(
            Process::Waiting("crash-looping: restarted 3 times".into()),
            Some(false),
            2,
            None,
        );
        assert_eq!(advance(&mut r, &looping, 30, &T), Step::Changed);
        assert_eq!(r.state, Starting, "the platform restarts it, not the fleet");
        assert_eq!(
            advance(&mut r, &looping, T.start_timeout_ms + 1, &T),
            Step::Changed
        );
        assert_eq!(r.state, Failed);
        // A ready replica that starts waiting counts as unhealthy through its failed probes, not at once.
        let mut ready = replica("q", Ready, 1, 0);
        assert_eq!(advance(&mut ready, &looping, 40, &T), Step::Nothing);
        let long = facts(
            Process::Waiting("crash-looping".into()),
            Some(false),
            3,
            None,
        );
        assert_eq!(advance(&mut ready, &long, 50, &T), Step::Changed);
        assert_eq!(ready.state, Failed);
        assert_eq!(
            ready.last_error.as_deref(),
            Some("stopped serving (3 checks in a row): crash-looping")
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let waits: Vec<i64> = (1..=6).map(|n| T.backoff_ms(n)).collect();
        assert_eq!(waits, [1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
        assert_eq!(T.backoff_ms(u32::MAX), 8_000, "no overflow");
    }

    #[test]
    fn a_replica_starts_becomes_ready_crashes_and_restarts_with_backoff() {
        let mut r = replica("r", Pending, 1, 0);
        assert_eq!(advance(&mut r, &Facts::none(), 0, &T), Step::Start);
        r.enter(Starting, 10);
        let running = facts(Process::Running, Some(false), 1, None);
        assert_eq!(advance(&mut r, &running, 20, &T), Step::Nothing);
        let healthy = facts(Process::Running, Some(true), 0, Some(0.0));
        assert_eq!(advance(&mut r, &healthy, 30, &T), Step::Changed);
        assert_eq!((r.state, r.since), (Ready, 30));
        // Crash: failed, restart after 1 s, then 2 s after the next crash.
        let exited = facts(Process::Exited("status 1".into()), None, 0, None);
        assert_eq!(advance(&mut r, &exited, 1_000, &T), Step::Changed);
        assert_eq!(r.state, Failed);
        assert_eq!(r.last_error.as_deref(), Some("exited: status 1"));
        assert_eq!(r.next_attempt_at, Some(2_000));
        assert_eq!(
            advance(&mut r, &exited, 1_999, &T),
            Step::Nothing,
            "backing off"
        );
        assert_eq!(advance(&mut r, &exited, 2_000, &T), Step::Restart);
        r.enter(Starting, 2_000);
        assert_eq!(advance(&mut r, &exited, 2_100, &T), Step::Changed);
        assert_eq!(r.next_attempt_at, Some(4_100), "second restart waits 2 s");
        assert_eq!(r.restarts, 2);
        assert_eq!(r.reason.as_deref(), Some("restarting in 2 s"));
    }

    #[test]
    fn a_ready_replica_whose_process_nobody_knows_has_failed() {
        let mut r = replica("r", Ready, 1, 0);
        assert_eq!(advance(&mut r, &Facts::none(), 10, &T), Step::Changed);
        assert_eq!(r.state, Failed);
        assert_eq!(
            r.last_error.as_deref(),
            Some("exited: not running any more")
        );
    }

    #[test]
    fn an_unhealthy_ready_replica_fails_only_after_several_probes() {
        let mut r = replica("r", Ready, 1, 0);
        let flaky = facts(Process::Running, Some(false), 2, None);
        assert_eq!(
            advance(&mut r, &flaky, 10, &T),
            Step::Nothing,
            "one miss is not a failure"
        );
        let dead = facts(Process::Running, Some(false), 3, None);
        assert_eq!(advance(&mut r, &dead, 20, &T), Step::Changed);
        assert_eq!(r.state, Failed);
        assert!(r
            .last_error
            .as_deref()
            .unwrap()
            .contains("stopped answering /health"));
    }

    #[test]
    fn a_replica_that_never_gets_healthy_times_out() {
        let mut r = replica("r", Starting, 1, 0);
        let loading = facts(Process::Running, Some(false), 9, None);
        assert_eq!(advance(&mut r, &loading, 60_000, &T), Step::Nothing);
        assert_eq!(advance(&mut r, &loading, 60_001, &T), Step::Changed);
        assert_eq!(
            r.last_error.as_deref(),
            Some("did not answer /health within 60 s of starting")
        );
    }

    #[test]
    fn draining_ends_when_idle_gone_or_out_of_grace() {
        let mut r = replica("r", Ready, 1, 0);
        drain(&mut r, "scaled down", 100, &T);
        assert_eq!((r.state, r.drain_until), (Draining, Some(30_100)));
        let busy = facts(Process::Running, Some(true), 0, Some(2.0));
        assert_eq!(
            advance(&mut r, &busy, 5_000, &T),
            Step::Nothing,
            "streams still running"
        );
        let unknown = facts(Process::Running, Some(true), 0, None);
        assert_eq!(advance(&mut r, &unknown, 5_000, &T), Step::Nothing);
        assert_eq!(
            advance(&mut r, &busy, 30_100, &T),
            Step::Stop,
            "grace is bounded"
        );
        let idle = facts(Process::Running, Some(true), 0, Some(0.0));
        assert_eq!(
            advance(&mut r, &idle, 1_000, &T),
            Step::Nothing,
            "idle, but the gateways may still route to it for a moment"
        );
        assert_eq!(advance(&mut r, &idle, 6_000, &T), Step::Stop);
        let gone = facts(Process::Exited("killed".into()), None, 0, None);
        assert_eq!(advance(&mut r, &gone, 6_000, &T), Step::Stop);
    }

    #[test]
    fn stopped_replicas_are_forgotten_after_a_while() {
        let mut r = replica("r", Stopped, 1, 0);
        assert_eq!(advance(&mut r, &Facts::none(), 600_000, &T), Step::Nothing);
        assert_eq!(advance(&mut r, &Facts::none(), 600_001, &T), Step::Remove);
    }

    #[test]
    fn plan_adds_and_removes_the_least_useful_first() {
        let d = deployment(3, 1);
        assert_eq!(plan(&d, &[]).add, 3);
        let rs = vec![
            replica("a", Ready, 1, 1),
            replica("b", Ready, 1, 2),
            replica("c", Starting, 1, 3),
            replica("p", Pending, 1, 4),
            replica("f", Failed, 1, 5),
            replica("s", Stopped, 1, 0),
        ];
        let p = plan(&deployment(1, 1), &rs);
        assert_eq!(p.add, 0);
        assert_eq!(
            p.drop,
            vec!["p"],
            "a pending replica holds nothing: dropped, not drained"
        );
        let drained: Vec<&str> = p.drain.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            drained,
            ["f", "c", "b"],
            "failed, then starting, then the newest ready"
        );
        assert_eq!(p.drain[0].1, "scaled down");
        assert_eq!(plan(&deployment(5, 1), &rs).add, 0, "5 live: a, b, c, p, f");
    }

    #[test]
    fn a_rolling_update_keeps_capacity() {
        let d = deployment(2, 2);
        let old = vec![replica("o1", Ready, 1, 1), replica("o2", Ready, 1, 2)];
        let p = plan(&d, &old);
        assert_eq!(
            (p.add, p.drain.len()),
            (2, 0),
            "new ones first, old ones keep serving"
        );

        let mut rs = old.clone();
        rs.push(replica("n1", Ready, 2, 3));
        rs.push(replica("n2", Starting, 2, 4));
        let p = plan(&d, &rs);
        assert_eq!(p.add, 0);
        assert_eq!(p.drain.len(), 1, "one new is ready: one old goes");
        assert_eq!(p.drain[0].1, "replaced by the new engine arguments");

        rs[3].state = Ready;
        assert_eq!(plan(&d, &rs).drain.len(), 2, "both new ready: both old go");
    }

    #[test]
    fn a_rolling_update_on_a_full_fleet_makes_room_one_at_a_time() {
        let d = deployment(2, 2);
        let rs = vec![
            replica("o1", Ready, 1, 1),
            replica("o2", Ready, 1, 2),
            replica("n1", Pending, 2, 3),
            replica("n2", Pending, 2, 4),
        ];
        let p = plan(&d, &rs);
        assert_eq!(p.drain.len(), 1, "no GPUs for the new: one old makes room");
        assert_eq!(p.add, 0);

        // The next passes: o2 drains, then stops; o1 stays until a new one is ready.
        let mut later = rs.clone();
        later[1].state = Draining;
        assert!(plan(&d, &later).drain.is_empty(), "one at a time");
        later[1].state = Stopped;
        assert!(
            plan(&d, &later).drain.is_empty(),
            "below full strength: o1 keeps serving"
        );
        later[2].state = Ready;
        let p = plan(&d, &later);
        assert_eq!(
            p.drain
                .iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>(),
            ["o1"],
            "n1 ready, n2 blocked, full strength again: o1 makes room"
        );
    }

    #[test]
    fn deleting_drains_everything_then_removes_the_deployment() {
        let mut d = deployment(2, 1);
        d.deleting = true;
        let rs = vec![replica("a", Ready, 1, 1), replica("p", Pending, 1, 2)];
        let p = plan(&d, &rs);
        assert_eq!(p.drop, vec!["p"]);
        assert_eq!(p.drain.len(), 1);
        assert!(!p.delete_deployment);
        let done = vec![replica("a", Stopped, 1, 1)];
        assert!(plan(&d, &done).delete_deployment);
        assert!(plan(&d, &[]).delete_deployment);
        let draining = vec![replica("a", Draining, 1, 1)];
        assert!(
            !plan(&d, &draining).delete_deployment,
            "waits for the drain"
        );
    }

    #[test]
    fn plan_is_level_triggered() {
        let d = deployment(1, 1);
        let rs = vec![replica("a", Ready, 1, 1), replica("b", Ready, 1, 2)];
        assert_eq!(plan(&d, &rs), plan(&d, &rs));
    }
}
