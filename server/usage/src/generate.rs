//! Realistic usage, made up: for `tollgate usage generate` and the dashboards' benchmark. Records go through
//! `Store::insert_usage_batch` in the gateway's batch size, rollups included, so the time it takes is the ingest
//! rate the gateway's metering would see.
//!
//! The shape: `tenants` tenants of 2 to 6 teams, each team subscribed to 1 to 3 of the seed catalog's models with
//! 1 or 2 keys per subscription, and 5 % of requests from the playground (no key). Requests spread over `days`
//! days ending now, busier in working hours (UTC); 97 % answer 200, 1.5 % 429, 1 % 5xx, 0.5 % 499 (client gone);
//! prompts of 20 to 4,000 tokens, completions of 1 to 1,000, latency growing with the completion, and a time to
//! first token for the 70 % that stream. Ids are synthetic (`gen-...`): the tenants, teams and keys are not created.

use rand::{rngs::StdRng, Rng, SeedableRng};
use std::time::{Duration, Instant};
use tollgate_store::{NewUsage, Store, StoreError};

const MODELS: [&str; 9] = [
    "llama-3.1-8b-instruct",
    "llama-3.1-70b-instruct",
    "mistral-7b-instruct-v0.3",
    "mistral-small-3.1-24b-instruct",
    "qwen2.5-7b-instruct",
    "qwen2.5-coder-32b-instruct",
    "granite-3.1-8b-instruct",
    "granite-3.1-2b-base",
    "bge-m3",
];

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub records: u64,
    pub tenants: u32,
    pub days: u32,
    /// Live traffic instead: records stamped as if they arrived at this many per second, ending at `now` (the
    /// rate the gateway's metering must keep up with), rather than spread over `days`.
    pub per_second: Option<u64>,
    /// Records per `insert_usage_batch` (the gateway's default is 512).
    pub batch: usize,
    /// The same seed makes the same records (ids included, so a second run inserts nothing new).
    pub seed: u64,
    /// The newest record's time, epoch ms.
    pub now: i64,
}

/// How it went.
#[derive(Debug, Clone, Copy)]
pub struct Generated {
    pub inserted: u64,
    pub elapsed: Duration,
}

impl Generated {
    pub fn per_second(&self) -> f64 {
        self.inserted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

struct Sub {
    tenant: String,
    team: String,
    id: String,
    model: &'static str,
    keys: Vec<String>,
}

fn world(rng: &mut StdRng, tenants: u32) -> Vec<Sub> {
    let mut subs = Vec::new();
    for t in 0..tenants.max(1) {
        let tenant = format!("gen-tenant-{t:03}");
        for team in 0..rng.gen_range(2..=6) {
            let team = format!("gen-team-{t:03}-{team}");
            let mut models = MODELS.to_vec();
            for _ in 0..rng.gen_range(1..=3) {
                let model = models.remove(rng.gen_range(0..models.len()));
                let id = format!("gen-sub-{}", subs.len());
                let keys = (0..rng.gen_range(1..=2))
                    .map(|k| format!("gen-key-{}-{k}", subs.len()))
                    .collect();
                subs.push(Sub {
                    tenant: tenant.clone(),
                    team: team.clone(),
                    id,
                    model,
                    keys,
                });
            }
        }
    }
    subs
}

/// Owned fields of one record (the store takes borrowed ones).
struct Owned {
    id: String,
    at: i64,
    sub: usize,
    key: Option<usize>,
    status: i64,
    prompt: i64,
    completion: i64,
    latency: i64,
    ttft: Option<i64>,
    refusal: &'static str,
}

/// Busier in working hours: the chance that a uniformly drawn instant is kept.
fn keep(rng: &mut StdRng, at: i64) -> bool {
    let hour = at.rem_euclid(86_400_000) / 3_600_000;
    let weight = if (8..18).contains(&hour) { 1.0 } else { 0.3 };
    rng.gen_bool(weight)
}

fn one(rng: &mut StdRng, subs: &[Sub], i: u64, seed: u64, from: i64, span: i64) -> Owned {
    let at = loop {
        let at = from + rng.gen_range(0..span.max(1));
        if keep(rng, at) {
            break at;
        }
    };
    let sub = rng.gen_range(0..subs.len());
    let key = (!rng.gen_bool(0.05)).then(|| rng.gen_range(0..subs[sub].keys.len()));
    let roll: f64 = rng.gen();
    let status = if roll < 0.97 {
        200
    } else if roll < 0.985 {
        429
    } else if roll < 0.995 {
        [500, 502, 503][rng.gen_range(0..3)]
    } else {
        499
    };
    let ok = status == 200;
    let prompt = if status == 429 {
        0
    } else {
        (20.0 * 200f64.powf(rng.gen::<f64>())) as i64
    };
    let completion = if ok {
        (1000f64.powf(rng.gen::<f64>())) as i64
    } else {
        0
    };
    let streamed = rng.gen_bool(0.7);
    let ttft = (ok && streamed).then(|| rng.gen_range(40..900));
    let latency = if status == 429 {
        rng.gen_range(0..3)
    } else {
        ttft.unwrap_or(0) + completion * rng.gen_range(8..30) + rng.gen_range(5..200)
    };
    // Refusals: mostly per-minute limits, some the monthly quota.
    let refusal = if status == 429 {
        ["requests", "tokens", "tokens", "monthly_tokens"][rng.gen_range(0..4)]
    } else {
        ""
    };
    Owned {
        refusal,
        id: format!("gen-{seed}-{i}"),
        at,
        sub,
        key,
        status,
        prompt,
        completion,
        latency,
        ttft,
    }
}

/// Generates `spec.records` records (oldest first, batch by batch, as the gateway writes them) and inserts them.
/// `progress` is called after each batch with the count so far.
pub async fn generate(
    store: &Store,
    spec: &Spec,
    mut progress: impl FnMut(u64),
) -> Result<Generated, StoreError> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let subs = world(&mut rng, spec.tenants);
    let span = match spec.per_second {
        Some(rate) => i64::try_from(spec.records.saturating_mul(1_000) / rate.max(1))
            .unwrap_or(i64::MAX)
            .max(1),
        None => i64::from(spec.days.max(1)) * 86_400_000,
    };
    let from = spec.now - span;
    let batch = spec.batch.max(1) as u64;
    let batches = spec.records.div_ceil(batch);
    let started = Instant::now();
    let mut inserted = 0;
    for b in 0..batches {
        // Each batch covers its own slice of the range, so records arrive roughly in time order.
        let slice = span / batches.max(1) as i64;
        let slice_from = from + slice * b as i64;
        let n = batch.min(spec.records - b * batch);
        let owned: Vec<Owned> = (0..n)
            .map(|j| {
                one(
                    &mut rng,
                    &subs,
                    b * batch + j,
                    spec.seed,
                    slice_from,
                    slice.max(1),
                )
            })
            .collect();
        let rows: Vec<NewUsage<'_>> = owned
            .iter()
            .map(|o| {
                let s = &subs[o.sub];
                NewUsage {
                    id: &o.id,
                    request_id: &o.id,
                    at: o.at,
                    tenant_id: &s.tenant,
                    team_id: &s.team,
                    subscription_id: &s.id,
                    key_id: o.key.map(|k| s.keys[k].as_str()),
                    model: s.model,
                    replica: "",
                    endpoint: "chat",
                    status: o.status,
                    prompt_tokens: o.prompt,
                    completion_tokens: o.completion,
                    latency_ms: o.latency,
                    ttft_ms: o.ttft,
                    streamed: o.ttft.is_some(),
                    client_disconnected: o.status == 499,
                    source: if o.key.is_some() { "key" } else { "playground" },
                    refusal: o.refusal,
                }
            })
            .collect();
        inserted += store.insert_usage_batch(&rows).await?;
        progress(inserted);
    }
    Ok(Generated {
        inserted,
        elapsed: started.elapsed(),
    })
}
