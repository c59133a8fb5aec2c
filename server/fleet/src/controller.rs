//! The reconcile loop. One server replica at a time holds the lease and runs it; each pass reads the desired
//! state (deployments) and the last observed state (replicas) from the database, looks at the world (the driver,
//! `/health`, `/metrics`), lets the rules decide (`rules::lifecycle`, `rules::placement`, `rules::autoscale`) and
//! writes back what changed, in one transaction that also bumps the routes revision when the gateway's picture
//! changed. A pass is not told why it runs: every second, and at once when something asks (`wake`).

use crate::driver::{Driver, DriverError, ReplicaSpec};
use crate::metrics::FleetMetrics;
use crate::model::{event, requirement, Deployment, Replica};
use crate::probe::{Load, Prober};
use crate::rules::autoscale::{Autoscaler, Policy, Signal};
use crate::rules::lifecycle::{self, Facts, Process, Step, Timing};
use crate::rules::placement::{self, Holder, Node, Outcome};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tollgate_domain::fleet::ReplicaState;
use tollgate_store::{new_id, now_millis, FleetChanges, LeaseFence, NodeRow, Store, StoreError};

/// The lease's name in `fleet_lease`.
pub const LEASE: &str = "fleet-controller";
/// How often the driver is asked to stop engines no replica names.
const GARBAGE_EVERY_MS: i64 = 60_000;

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This server process, as the lease names it.
    pub holder: String,
    pub tick: Duration,
    pub lease_ttl_ms: i64,
    pub timing: Timing,
    pub probe_timeout: Duration,
    /// Scale-up and scale-down stabilisation windows.
    pub up_window_ms: i64,
    pub down_window_ms: i64,
    /// How often the driver's inventory is read again.
    pub inventory_every_ms: i64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            holder: new_id("ctl"),
            tick: Duration::from_secs(1),
            lease_ttl_ms: 10_000,
            timing: Timing::default(),
            probe_timeout: Duration::from_secs(2),
            up_window_ms: 0,
            down_window_ms: 60_000,
            inventory_every_ms: 30_000,
        }
    }
}

/// What the controller remembers between passes (lost on takeover, which only makes it cautious).
/// What an engine is told about the catalog model it serves.
struct Served {
    /// The name the engine serves it as (the catalog's upstream name).
    name: String,
    context_length: u32,
}

#[derive(Default)]
struct Memory {
    health_failures: HashMap<String, u32>,
    finished: HashMap<String, f64>,
    last_activity: HashMap<String, i64>,
    scalers: HashMap<String, Autoscaler>,
    inventory: Option<(i64, Vec<Node>)>,
    leader: bool,
    garbage_collected_at: Option<i64>,
}

pub struct Controller {
    store: Store,
    driver: Arc<dyn Driver>,
    config: ControllerConfig,
    prober: Prober,
    metrics: Arc<FleetMetrics>,
    wake: Arc<Notify>,
    /// Told after a pass that changed what the gateway routes to (this server's route publisher listens).
    routes_changed: Arc<Notify>,
    /// Set at shutdown: no more passes, and the lease is not taken again.
    stopped: std::sync::atomic::AtomicBool,
    memory: Mutex<Memory>,
}

/// What a pass saw of one replica.
struct Seen {
    facts: Facts,
    load: Option<Load>,
}

impl Controller {
    pub fn new(
        store: Store,
        driver: Arc<dyn Driver>,
        config: ControllerConfig,
        metrics: Arc<FleetMetrics>,
        wake: Arc<Notify>,
        routes_changed: Arc<Notify>,
    ) -> Self {
        Self {
            routes_changed,
            stopped: std::sync::atomic::AtomicBool::new(false),
            prober: Prober::new(config.probe_timeout),
            store,
            driver,
            config,
            metrics,
            wake,
            memory: Mutex::default(),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs passes until the task is aborted; gives the lease back when it is.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if self.stopped.load(std::sync::atomic::Ordering::Acquire) {
                    return;
                }
                if let Err(e) = self.tick(now_millis()).await {
                    self.metrics.failed("store");
                    tracing::warn!(error = %e, "fleet pass failed; retrying next tick");
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.config.tick) => {}
                    _ = self.wake.notified() => {}
                }
            }
        })
    }

    /// One turn of the loop at `now`: take or renew the lease, and run a pass when this server holds it. Tests
    /// drive the controller through it with a clock of their own.
    pub async fn tick(&self, now: i64) -> Result<bool, StoreError> {
        if !self.lead(now).await? {
            return Ok(false);
        }
        self.pass(now).await?;
        Ok(true)
    }

    /// Takes or renews the lease; logs when leadership changes.
    async fn lead(&self, now: i64) -> Result<bool, StoreError> {
        let mine = self
            .store
            .try_lease(LEASE, &self.config.holder, now, self.config.lease_ttl_ms)
            .await?;
        let mut m = self.memory();
        if mine != m.leader {
            m.leader = mine;
            if mine {
                tracing::info!(holder = %self.config.holder, "this server now runs the fleet controller");
                // Start from what the database says, not from what an earlier term remembered.
                m.health_failures.clear();
                m.finished.clear();
                m.last_activity.clear();
                m.scalers.clear();
                m.inventory = None;
            } else {
                tracing::info!("another server runs the fleet controller now");
            }
        }
        self.metrics.set_leader(mine);
        Ok(mine)
    }

    /// Gives the lease up, so another server takes over without waiting for it to expire.
    pub async fn release(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Release);
        let _ = self.store.release_lease(LEASE, &self.config.holder).await;
    }

    async fn inventory(&self, now: i64) -> Option<Vec<Node>> {
        if let Some((at, nodes)) = &self.memory().inventory {
            if now - at < self.config.inventory_every_ms {
                return Some(nodes.clone());
            }
        }
        match self.driver.inventory().await {
            Ok(nodes) => {
                let rows: Vec<NodeRow> = nodes
                    .iter()
                    .map(|n| NodeRow {
                        name: n.name.clone(),
                        schedulable: i64::from(n.schedulable),
                        gpus: serde_json::to_string(&n.gpus).unwrap_or_else(|_| "[]".into()),
                        seen_at: now,
                    })
                    .collect();
                if let Err(e) = self.store.replace_nodes(&rows).await {
                    tracing::warn!(error = %e, "cannot store the GPU inventory");
                }
                self.memory().inventory = Some((now, nodes.clone()));
                Some(nodes)
            }
            Err(e) => {
                self.metrics.failed(e.kind());
                tracing::warn!(error = %e, "cannot read the GPU inventory");
                self.memory().inventory.as_ref().map(|(_, n)| n.clone())
            }
        }
    }

    /// One reconcile pass over every deployment.
    pub async fn pass(&self, now: i64) -> Result<(), StoreError> {
        self.metrics.pass();
        let Some(mut nodes) = self.inventory(now).await else {
            return Ok(());
        };
        let served: HashMap<String, Served> = self
            .store
            .all_models()
            .await?
            .into_iter()
            .map(|m| {
                let served = Served {
                    name: m.upstream_name,
                    context_length: u32::try_from(m.context_length.max(0)).unwrap_or(u32::MAX),
                };
                (m.id, served)
            })
            .collect();
        let mut deployments: Vec<(Deployment, i64)> = Vec::new();
        for row in self.store.deployments().await? {
            match Deployment::from_row(&row) {
                Some(d) => deployments.push((d, row.created_at)),
                None => {
                    tracing::warn!(deployment = %row.id, "cannot read this deployment's stored spec; left alone")
                }
            }
        }
        let before: Vec<Replica> = self
            .store
            .replicas()
            .await?
            .iter()
            .map(Replica::from_row)
            .collect();
        let replicas = before.clone();
        let seen = self.look(&replicas).await;
        let demand = self.store.demand_since(now - 10_000).await?;
        let mut changes = FleetChanges::default();

        // Who holds which GPU. Draining replicas are going anyway: never preempted again.
        let priority: HashMap<&str, i32> = deployments
            .iter()
            .map(|(d, _)| (d.id.as_str(), d.spec.priority))
            .collect();
        for r in replicas.iter().filter(|r| r.state.holds_gpus()) {
            let p = if r.state == ReplicaState::Draining {
                i32::MAX
            } else {
                priority.get(r.deployment_id.as_str()).copied().unwrap_or(0)
            };
            hold(&mut nodes, r, p);
        }

        // Highest priority first, so a preempting deployment gets the GPUs it freed.
        deployments.sort_by(|(a, at), (b, bt)| {
            b.spec
                .priority
                .cmp(&a.spec.priority)
                .then(at.cmp(bt))
                .then(a.id.cmp(&b.id))
        });
        // Each deployment's replicas, so no step scans the whole fleet.
        let mut groups: BTreeMap<String, Vec<Replica>> = BTreeMap::new();
        for r in replicas {
            groups.entry(r.deployment_id.clone()).or_default().push(r);
        }
        for (d, created_at) in &deployments {
            // A deployment stored after this pass read its clock (created while the pass was starting) is handled
            // as of its creation, so none of its events comes before the one that created it.
            let now = if (1..=60_000).contains(&(created_at - now)) {
                *created_at
            } else {
                now
            };
            let mut d = d.clone();
            let mut mine = groups.remove(&d.id).unwrap_or_default();
            // From here on engines may start: a failed write is logged, not returned, so the pass still records
            // (or undoes) what it started.
            if let Err(e) = self.autoscale(&mut d, &mine, &seen, &demand, now).await {
                self.metrics.failed("store");
                tracing::warn!(deployment = %d.id, error = %e, "cannot record the autoscaler's decision");
            }
            let plan = lifecycle::plan(&d, &mine);
            for _ in 0..plan.add {
                let r = Replica::new(new_id("rep"), d.id.clone(), d.generation, now);
                changes.events.push(event(
                    &d.id,
                    Some(&r.id),
                    now,
                    "created",
                    "replica created".into(),
                ));
                mine.push(r);
            }
            for id in &plan.drop {
                if let Some(r) = mine.iter_mut().find(|r| &r.id == id) {
                    r.enter(ReplicaState::Stopped, now);
                    r.reason = Some("not needed any more".into());
                    changes.events.push(event(
                        &d.id,
                        Some(id),
                        now,
                        "stopped",
                        "stopped before it was placed".into(),
                    ));
                }
            }
            for (id, why) in &plan.drain {
                if let Some(r) = mine.iter_mut().find(|r| &r.id == id) {
                    lifecycle::drain(r, why, now, &self.config.timing);
                    changes.events.push(event(
                        &d.id,
                        Some(id),
                        now,
                        "draining",
                        format!("draining: {why}"),
                    ));
                    hold(&mut nodes, r, i32::MAX);
                }
            }
            for index in 0..mine.len() {
                self.step_replica(
                    &d,
                    index,
                    &mut mine,
                    &mut groups,
                    &mut nodes,
                    &seen,
                    &served,
                    now,
                    &mut changes,
                )
                .await;
            }
            let serving = mine.iter().any(|r| r.state == ReplicaState::Ready);
            if serving && d.condition.is_some() {
                // It runs now: whatever stopped it before is over.
                let cleared = self
                    .store
                    .set_deployment_status(
                        &d.id,
                        i64::from(d.desired),
                        d.scale_reason.as_deref(),
                        None,
                    )
                    .await;
                if let Err(e) = cleared {
                    tracing::warn!(deployment = %d.id, error = %e, "cannot clear the deployment's condition");
                }
            }
            if plan.delete_deployment {
                let deleted = self
                    .store
                    .delete_deployment(
                        &d.id,
                        &event(&d.id, None, now, "deleted", "deployment deleted".into()),
                    )
                    .await;
                match deleted {
                    Ok(()) => {
                        mine.clear();
                        changes.routes_changed = true;
                    }
                    Err(e) => {
                        tracing::warn!(deployment = %d.id, error = %e, "cannot delete the deployment; retrying")
                    }
                }
            }
            groups.insert(d.id.clone(), mine);
        }
        let replicas: Vec<Replica> = groups.into_values().flatten().collect();

        // Write back what changed.
        let old: HashMap<&str, &Replica> = before.iter().map(|r| (r.id.as_str(), r)).collect();
        for r in &replicas {
            match old.get(r.id.as_str()) {
                Some(o) if *o == r => {}
                Some(o) => {
                    if o.state != r.state || o.base_url != r.base_url {
                        changes.routes_changed = true;
                    }
                    changes.upserts.push(r.to_row());
                }
                None => {
                    changes.routes_changed = true;
                    changes.upserts.push(r.to_row());
                }
            }
        }
        self.metrics.observe_replicas(&replicas);
        self.forget_the_gone(&deployments, &replicas);
        // Written only while this server still holds the lease (checked and renewed in the same transaction): a
        // controller that lost it mid-pass writes nothing, and stops what it started, so no replica runs twice.
        let lease = LeaseFence {
            name: LEASE,
            holder: &self.config.holder,
            now,
            ttl_ms: self.config.lease_ttl_ms,
        };
        match self
            .store
            .apply_fleet_changes_fenced(&changes, &lease)
            .await
        {
            Ok(true) => {
                if changes.routes_changed {
                    self.routes_changed.notify_one();
                }
                self.collect_garbage(&replicas, now).await;
                Ok(())
            }
            Ok(false) => {
                tracing::warn!("lost the fleet lease during a pass; undoing what it started");
                self.undo_started(&before, &replicas).await;
                Ok(())
            }
            Err(e) => {
                self.undo_started(&before, &replicas).await;
                Err(e)
            }
        }
    }

    /// Once a minute, after a pass whose rows were written: the driver stops what it runs that no stored
    /// replica names.
    async fn collect_garbage(&self, replicas: &[Replica], now: i64) {
        {
            let mut m = self.memory();
            if m.garbage_collected_at
                .is_some_and(|at| now - at < GARBAGE_EVERY_MS)
            {
                return;
            }
            m.garbage_collected_at = Some(now);
        }
        let known: std::collections::HashSet<String> =
            replicas.iter().filter_map(|r| r.handle.clone()).collect();
        for handle in self.driver.collect_garbage(&known).await {
            self.metrics.failed("orphan_stopped");
            tracing::warn!(%handle, "stopped an engine no replica names (left by an earlier controller)");
        }
    }

    /// Stops engines this pass started whose rows could not be written (their handles would be lost).
    async fn undo_started(&self, before: &[Replica], after: &[Replica]) {
        let known: std::collections::HashSet<&str> =
            before.iter().filter_map(|r| r.handle.as_deref()).collect();
        for h in after.iter().filter_map(|r| r.handle.as_deref()) {
            if !known.contains(h) {
                let _ = self.driver.stop(h).await;
            }
        }
    }

    /// Drops what the controller remembers of replicas and deployments that no longer exist.
    fn forget_the_gone(&self, deployments: &[(Deployment, i64)], replicas: &[Replica]) {
        let ids: std::collections::HashSet<&str> = replicas.iter().map(|r| r.id.as_str()).collect();
        let deps: std::collections::HashSet<&str> =
            deployments.iter().map(|(d, _)| d.id.as_str()).collect();
        let mut m = self.memory();
        m.health_failures.retain(|k, _| ids.contains(k.as_str()));
        m.finished.retain(|k, _| ids.contains(k.as_str()));
        m.last_activity.retain(|k, _| deps.contains(k.as_str()));
        m.scalers.retain(|k, _| deps.contains(k.as_str()));
    }

    /// Looks at every replica that has a process: is it running, healthy, how busy.
    async fn look(&self, replicas: &[Replica]) -> HashMap<String, Seen> {
        let mut probes = tokio::task::JoinSet::new();
        for r in replicas {
            let Some(handle) = r.handle.clone() else {
                continue;
            };
            if !matches!(
                r.state,
                ReplicaState::Starting
                    | ReplicaState::Ready
                    | ReplicaState::Draining
                    | ReplicaState::Failed
            ) {
                continue;
            }
            let (driver, prober, id, state, base) = (
                self.driver.clone(),
                self.prober.clone(),
                r.id.clone(),
                r.state,
                r.base_url.clone(),
            );
            probes.spawn(async move {
                let process = driver.observe(&handle).await;
                let running = process == Process::Running;
                let serving = matches!(state, ReplicaState::Starting | ReplicaState::Ready);
                let (healthy, load) = match (&base, running, state) {
                    // The platform probes `/health` itself (Kubernetes's readiness probe): its word is the
                    // health; the engine's own metrics still tell the load.
                    (Some(b), _, _) if serving && driver.reports_readiness() => {
                        let load = if running { prober.load(b).await } else { None };
                        (Some(running), load)
                    }
                    (Some(b), true, ReplicaState::Starting | ReplicaState::Ready) => {
                        let (h, l) = tokio::join!(prober.healthy(b), prober.load(b));
                        (Some(h), l)
                    }
                    (Some(b), true, ReplicaState::Draining) => (None, prober.load(b).await),
                    _ => (None, None),
                };
                (id, process, healthy, load)
            });
        }
        let mut out = HashMap::new();
        let mut memory_updates = Vec::new();
        while let Some(joined) = probes.join_next().await {
            let Ok((id, process, healthy, load)) = joined else {
                continue;
            };
            memory_updates.push((id.clone(), healthy));
            out.insert(
                id,
                Seen {
                    facts: Facts {
                        process,
                        healthy,
                        health_failures: 0,
                        busy: load.map(|l| l.busy()),
                    },
                    load,
                },
            );
        }
        let mut m = self.memory();
        for (id, healthy) in memory_updates {
            let failures = m.health_failures.entry(id.clone()).or_insert(0);
            match healthy {
                Some(true) => *failures = 0,
                Some(false) => *failures += 1,
                None => {}
            }
            if let Some(s) = out.get_mut(&id) {
                s.facts.health_failures = *failures;
            }
        }
        out
    }

    /// Decides the deployment's replica count from its engines' load and waiting requests.
    async fn autoscale(
        &self,
        d: &mut Deployment,
        replicas: &[Replica],
        seen: &HashMap<String, Seen>,
        demand: &[(String, i64)],
        now: i64,
    ) -> Result<(), StoreError> {
        let mine: Vec<&Replica> = replicas.iter().collect();
        let live = mine
            .iter()
            .filter(|r| r.state.is_live() && r.generation >= d.generation)
            .count();
        let ready = mine
            .iter()
            .filter(|r| r.state == ReplicaState::Ready)
            .count();
        let coming = mine
            .iter()
            .filter(|r| matches!(r.state, ReplicaState::Pending | ReplicaState::Starting))
            .count();
        let mut busy = 0.0;
        let mut kv: f64 = 0.0;
        let waiting_for_replica = demand
            .iter()
            .filter(|(model, _)| *model == d.spec.model_id)
            .map(|(_, at)| *at)
            .max();
        let decision = {
            let mut m = self.memory();
            for r in &mine {
                if let Some(load) = seen.get(&r.id).and_then(|s| s.load) {
                    busy += load.busy();
                    kv = kv.max(load.kv_cache);
                    let previous = m.finished.insert(r.id.clone(), load.finished);
                    if load.busy() > 0.0 || previous.is_some_and(|p| p != load.finished) {
                        m.last_activity.insert(d.id.clone(), now);
                    }
                }
            }
            if let Some(at) = waiting_for_replica {
                let last = m.last_activity.entry(d.id.clone()).or_insert(at);
                *last = (*last).max(at);
            }
            // A deployment the controller has just met counts as active now: no scale to zero on takeover.
            let last_request = *m.last_activity.entry(d.id.clone()).or_insert(now);
            let held = match waiting_for_replica {
                Some(at) if ready == 0 && now - at < 10_000 => 1.0,
                _ => 0.0,
            };
            let policy = Policy {
                min: d.spec.min_replicas,
                max: d.spec.max_replicas,
                target_per_replica: f64::from(d.spec.target_requests_per_replica.max(1)),
                up_window_ms: self.config.up_window_ms,
                down_window_ms: self.config.down_window_ms,
                idle_to_zero_ms: i64::from(d.spec.scale_to_zero_after_s) * 1000,
            };
            let signal = Signal {
                now_ms: now,
                demand: busy + held,
                // A full cache asks for one more replica, but not again while one is on its way.
                kv_cache: if coming > 0 { 0.0 } else { kv },
                last_request_ms: Some(last_request),
                current: u32::try_from(live).unwrap_or(u32::MAX),
            };
            m.scalers
                .entry(d.id.clone())
                .or_default()
                .recommend(&policy, &signal)
        };
        if decision.replicas != d.desired
            || without_figures(d.scale_reason.as_deref().unwrap_or(""))
                != without_figures(&decision.reason)
        {
            if decision.replicas != d.desired {
                self.store
                    .apply_fleet_changes(&FleetChanges {
                        events: vec![event(
                            &d.id,
                            None,
                            now,
                            "scaled",
                            format!(
                                "{} -> {} replicas: {}",
                                d.desired, decision.replicas, decision.reason
                            ),
                        )],
                        ..FleetChanges::default()
                    })
                    .await?;
            }
            d.desired = decision.replicas;
            d.scale_reason = Some(decision.reason);
            self.store
                .set_deployment_status(
                    &d.id,
                    i64::from(d.desired),
                    d.scale_reason.as_deref(),
                    d.condition.as_deref(),
                )
                .await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn step_replica(
        &self,
        d: &Deployment,
        index: usize,
        replicas: &mut [Replica],
        others: &mut BTreeMap<String, Vec<Replica>>,
        nodes: &mut [Node],
        seen: &HashMap<String, Seen>,
        served: &HashMap<String, Served>,
        now: i64,
        changes: &mut FleetChanges,
    ) {
        let t = &self.config.timing;
        let Some(id) = replicas.get(index).map(|r| r.id.clone()) else {
            return;
        };
        let id = id.as_str();
        let facts = match seen.get(id) {
            Some(s) => s.facts.clone(),
            None => Facts::none(),
        };
        let r = &mut replicas[index];
        let before = r.state;
        match lifecycle::advance(r, &facts, now, t) {
            Step::Nothing => {}
            Step::Changed => match r.state {
                ReplicaState::Ready => changes.events.push(event(
                    &d.id,
                    Some(id),
                    now,
                    "ready",
                    format!(
                        "ready on {} (GPUs {})",
                        r.node.as_deref().unwrap_or("?"),
                        gpu_list(&r.gpus)
                    ),
                )),
                ReplicaState::Failed => {
                    self.metrics.failed(if before == ReplicaState::Ready {
                        "replica_failed"
                    } else {
                        "start_failed"
                    });
                    changes.events.push(event(
                        &d.id,
                        Some(id),
                        now,
                        "failed",
                        format!(
                            "{}; {}",
                            r.last_error.as_deref().unwrap_or("failed"),
                            r.reason.as_deref().unwrap_or("")
                        ),
                    ));
                }
                _ => {}
            },
            Step::Start => {
                if r.gpus.is_empty() {
                    let req = requirement(&d.spec, &d.id);
                    match placement::place(nodes, &req) {
                        Outcome::Placed { node, gpus } => {
                            r.node = Some(node);
                            r.gpus = gpus;
                            let held = r.clone();
                            hold(nodes, &held, d.spec.priority);
                        }
                        Outcome::Preempt { .. } if fits_after_drains(nodes, &req) => {
                            // Replicas already draining will free enough: wait for them rather than drain more.
                            let reason = "waiting for GPUs that draining replicas are giving back"
                                .to_string();
                            if r.reason.as_deref() != Some(reason.as_str()) {
                                r.reason = Some(reason);
                            }
                            return;
                        }
                        Outcome::Preempt { victims, .. } => {
                            let why = format!(
                                "preempted by a higher-priority deployment of {} (priority {})",
                                d.spec.model_id, d.spec.priority
                            );
                            let reason = format!(
                                "waiting for GPUs: {} lower-priority replica(s) are draining",
                                victims.len()
                            );
                            if replicas[index].reason.as_deref() != Some(reason.as_str()) {
                                changes.events.push(event(
                                    &d.id,
                                    Some(id),
                                    now,
                                    "preempting",
                                    reason.clone(),
                                ));
                            }
                            replicas[index].reason = Some(reason);
                            for v in victims {
                                let victim = others
                                    .values_mut()
                                    .flat_map(|group| group.iter_mut())
                                    .find(|x| x.id == v);
                                if let Some(victim) = victim {
                                    lifecycle::drain(victim, &why, now, t);
                                    changes.events.push(event(
                                        &victim.deployment_id,
                                        Some(&victim.id),
                                        now,
                                        "preempted",
                                        why.clone(),
                                    ));
                                    let drained = victim.clone();
                                    hold(nodes, &drained, i32::MAX);
                                }
                            }
                            return;
                        }
                        Outcome::Refused { reason } => {
                            if r.reason.as_deref() != Some(reason.as_str()) {
                                self.metrics.failed("placement_refused");
                                changes.events.push(event(
                                    &d.id,
                                    Some(id),
                                    now,
                                    "pending",
                                    reason.clone(),
                                ));
                                r.reason = Some(reason);
                            }
                            return;
                        }
                    }
                }
                self.start(d, &mut replicas[index], served, now, changes, false)
                    .await;
            }
            Step::Restart => {
                if let Some(h) = r.handle.take() {
                    let _ = self.driver.stop(&h).await;
                }
                self.memory().health_failures.remove(id);
                self.start(d, &mut replicas[index], served, now, changes, true)
                    .await;
            }
            Step::Stop => {
                if let Some(h) = r.handle.take() {
                    if let Err(e) = self.driver.stop(&h).await {
                        self.metrics.failed(e.kind());
                        tracing::warn!(replica = %id, error = %e, "could not stop a replica; retrying");
                        r.handle = Some(h);
                        return;
                    }
                }
                let ms = r.gpu_ms(now);
                if ms > 0 {
                    changes.gpu_ms.push((d.id.clone(), ms));
                }
                // Its GPUs stay held in this pass's inventory: they are free from the next pass on, when the
                // deployments place in priority order again, so a preempting deployment gets what it freed
                // rather than the deployment it preempted, which this pass reaches later.
                let held = format!(
                    "stopped; held {} GPU(s) for {} s",
                    r.gpus.len(),
                    (now - r.gpu_since.unwrap_or(now)) / 1000
                );
                r.gpu_since = None;
                r.gpus.clear();
                r.base_url = None;
                r.enter(ReplicaState::Stopped, now);
                r.reason = None;
                self.memory().health_failures.remove(id);
                changes
                    .events
                    .push(event(&d.id, Some(id), now, "stopped", held));
            }
            Step::Remove => changes.removed.push(id.to_string()),
        }
    }

    /// Starts (or restarts) a placed replica through the driver.
    async fn start(
        &self,
        d: &Deployment,
        r: &mut Replica,
        served: &HashMap<String, Served>,
        now: i64,
        changes: &mut FleetChanges,
        restart: bool,
    ) {
        let model = served.get(&d.spec.model_id);
        let spec = ReplicaSpec {
            replica_id: r.id.clone(),
            deployment_id: d.id.clone(),
            served_name: model.map_or_else(|| d.spec.model_id.clone(), |m| m.name.clone()),
            node: r.node.clone().unwrap_or_default(),
            gpus: r.gpus.clone(),
            args: d.spec.engine.to_args(d.spec.gpus_per_replica),
            gpu_products: d.spec.gpu_products.clone(),
            min_gpu_memory_mib: u64::from(d.spec.min_gpu_memory_gib) * 1024,
            context_length: model.map_or(0, |m| m.context_length),
        };
        match self.driver.start(&spec).await {
            Ok(started) => {
                r.handle = Some(started.handle);
                r.base_url = Some(started.base_url);
                r.generation = r.generation.max(d.generation);
                if r.gpu_since.is_none() {
                    r.gpu_since = Some(now);
                }
                r.next_attempt_at = None;
                r.reason = Some("loading the model".into());
                r.enter(ReplicaState::Starting, now);
                changes.events.push(event(
                    &d.id,
                    Some(&r.id),
                    now,
                    if restart { "restarted" } else { "started" },
                    format!(
                        "{} on {} (GPUs {}){}",
                        if restart { "restarted" } else { "started" },
                        spec.node,
                        gpu_list(&spec.gpus),
                        if restart {
                            format!(", restart {}", r.restarts)
                        } else {
                            String::new()
                        }
                    ),
                ));
            }
            Err(e) => {
                self.metrics.failed(e.kind());
                let error = e.to_string();
                lifecycle::fail(
                    r,
                    format!("could not start: {error}"),
                    now,
                    &self.config.timing,
                );
                changes.events.push(event(
                    &d.id,
                    Some(&r.id),
                    now,
                    "failed",
                    format!("could not start: {error}"),
                ));
                if let DriverError::Permanent(msg) = e {
                    let condition = format!("the engine cannot start: {msg}");
                    if d.condition.as_deref() != Some(condition.as_str()) {
                        let _ = self
                            .store
                            .set_deployment_status(
                                &d.id,
                                i64::from(d.desired),
                                d.scale_reason.as_deref(),
                                Some(&condition),
                            )
                            .await;
                    }
                }
            }
        }
    }
}

/// A reason with its numbers taken out: the figures in an autoscaling reason (idle for 2 min 5 s) move every
/// pass; rewriting the row for them alone would be a write per deployment per second.
fn without_figures(reason: &str) -> String {
    reason.chars().filter(|c| !c.is_ascii_digit()).collect()
}

fn gpu_list(gpus: &[u32]) -> String {
    gpus.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether `req` would be placed if the GPUs of draining replicas (held at `i32::MAX`) were free already.
fn fits_after_drains(nodes: &[Node], req: &placement::Requirement) -> bool {
    let mut relaxed = nodes.to_vec();
    for g in relaxed.iter_mut().flat_map(|n| n.gpus.iter_mut()) {
        if g.holder.as_ref().is_some_and(|h| h.priority == i32::MAX) {
            g.holder = None;
        }
    }
    matches!(placement::place(&relaxed, req), Outcome::Placed { .. })
}

/// Marks `r`'s GPUs as held by it, at `priority`.
fn hold(nodes: &mut [Node], r: &Replica, priority: i32) {
    let Some(node) = nodes.iter_mut().find(|n| Some(&n.name) == r.node.as_ref()) else {
        return;
    };
    for g in node.gpus.iter_mut().filter(|g| r.gpus.contains(&g.index)) {
        g.holder = Some(Holder {
            replica: r.id.clone(),
            deployment: r.deployment_id.clone(),
            priority,
        });
    }
}
