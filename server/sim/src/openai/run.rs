//! Drives one planned request through the simulated engine, step by step.
//!
//! `next_step` waits for admission (queue), sleeps the prefill time, then one decode step
//! per token, where the step time depends on how many sequences run *now*. Each step
//! emits one token for every choice still going. Metrics are recorded as vLLM records
//! them. The run holds its scheduler [`Slot`]; dropping the run (client disconnect, cut)
//! frees it and counts the request as aborted.

use std::sync::atomic::Ordering;

use tokio::time::{sleep, Instant};

use crate::engine::Slot;
use crate::generator::FinishReason;
use crate::metrics::Finished;
use crate::openai::plan::Plan;
use crate::state::SharedState;

/// Outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Step `.0` produced a token for every choice longer than `.0`.
    Tokens(u32),
    /// A fault says: drop the connection now.
    Cut,
    /// Every choice is finished.
    Done,
}

/// A request in flight.
pub struct Run {
    state: SharedState,
    /// The plan being executed.
    pub plan: Plan,
    slot: Option<Slot>,
    arrival: Instant,
    admitted: Option<Instant>,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    step: u32,
    max_steps: u32,
    stalled: bool,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Running,
    Finished,
}

impl Run {
    /// Starts accounting for a planned request (it counts as waiting until admitted).
    pub fn new(state: SharedState, plan: Plan) -> Self {
        let max_steps = plan
            .choices
            .iter()
            .map(|c| c.num_tokens())
            .max()
            .unwrap_or(0);
        if let Some(l) = &plan.model.lora {
            state.metrics.lora_change(l, 1, 0);
        }
        Self {
            state,
            plan,
            slot: None,
            arrival: Instant::now(),
            admitted: None,
            first_token: None,
            last_token: None,
            step: 0,
            max_steps,
            stalled: false,
            phase: Phase::Waiting,
        }
    }

    /// Tokens generated so far over all choices.
    pub fn completion_tokens_so_far(&self) -> u32 {
        self.plan
            .choices
            .iter()
            .map(|c| c.num_tokens().min(self.step))
            .sum()
    }

    async fn start(&mut self) {
        let slot = self.state.engine.admit(self.plan.demand).await;
        let now = Instant::now();
        self.admitted = Some(now);
        self.slot = Some(slot);
        self.phase = Phase::Running;
        let m = &self.state.metrics;
        m.queue.observe((now - self.arrival).as_secs_f64());
        if let Some(l) = &self.plan.model.lora {
            m.lora_change(l, -1, 1);
        }
        // Prefill runs on what the prefix cache does not hold.
        let prompt = u64::from(self.plan.prompt_tokens);
        let cached: u64 = if self.plan.prefix_blocks.is_empty() {
            0
        } else {
            let hits = self
                .plan
                .prefix_blocks
                .iter()
                .map(|blocks| self.state.prefix_cache.lookup_and_insert(blocks))
                .sum::<u64>()
                .min(prompt);
            m.prefix_cache_queries.fetch_add(prompt, Ordering::Relaxed);
            m.prefix_cache_hits.fetch_add(hits, Ordering::Relaxed);
            hits
        };
        m.request_params_max_tokens
            .observe(f64::from(self.plan.max_tokens));
        let prefill = self.state.engine.latency().prefill(prompt - cached);
        if !prefill.is_zero() {
            sleep(prefill).await;
        }
        m.prompt_tokens
            .fetch_add(u64::from(self.plan.prompt_tokens), Ordering::Relaxed);
        m.request_prompt_tokens
            .observe(f64::from(self.plan.prompt_tokens));
    }

    /// Runs the next step.
    pub async fn next_step(&mut self) -> Step {
        if self.phase == Phase::Finished {
            return Step::Done;
        }
        if self.slot.is_none() {
            self.start().await;
        }
        if self.step >= self.max_steps {
            self.finish();
            return Step::Done;
        }
        if self.state.exited()
            || self
                .plan
                .faults
                .cut_after_tokens
                .is_some_and(|cut| self.step >= cut)
        {
            return Step::Cut;
        }
        if let Some((after, pause)) = self.plan.faults.stall {
            if !self.stalled && self.step >= after {
                self.stalled = true;
                sleep(pause).await;
            }
        }
        if self.step > 0 {
            let d = self
                .state
                .engine
                .latency()
                .decode_step(self.state.engine.running_seqs());
            if !d.is_zero() {
                sleep(d).await;
            }
        }
        let step = self.step;
        let active = self
            .plan
            .choices
            .iter()
            .filter(|c| c.num_tokens() > step)
            .count() as u64;
        if let Some(slot) = &mut self.slot {
            slot.hold(active);
        }
        let m = &self.state.metrics;
        m.generation_tokens.fetch_add(active, Ordering::Relaxed);
        let now = Instant::now();
        match self.last_token {
            None => {
                self.first_token = Some(now);
                m.ttft.observe((now - self.arrival).as_secs_f64());
            }
            Some(prev) => m.itl.observe((now - prev).as_secs_f64()),
        }
        self.last_token = Some(now);
        self.step += 1;
        Step::Tokens(step)
    }

    /// Runs every remaining step; returns false if a fault cut the request.
    pub async fn run_to_end(&mut self) -> bool {
        loop {
            match self.next_step().await {
                Step::Tokens(_) => {}
                Step::Cut => return false,
                Step::Done => return true,
            }
        }
    }

    fn finish(&mut self) {
        if self.phase == Phase::Finished {
            return;
        }
        let m = &self.state.metrics;
        for c in &self.plan.choices {
            m.finished(match c.finish_reason {
                FinishReason::Stop | FinishReason::ToolCalls => Finished::Stop,
                FinishReason::Length => Finished::Length,
            });
            m.request_generation_tokens
                .observe(f64::from(c.num_tokens()));
        }
        let now = Instant::now();
        m.e2e.observe((now - self.arrival).as_secs_f64());
        if let (Some(admitted), Some(first)) = (self.admitted, self.first_token) {
            m.prefill.observe((first - admitted).as_secs_f64());
            m.decode
                .observe((self.last_token.unwrap_or(now) - first).as_secs_f64());
        }
        if let Some(l) = &self.plan.model.lora {
            m.lora_change(l, 0, -1);
        }
        self.slot = None;
        self.phase = Phase::Finished;
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let m = &self.state.metrics;
        match self.phase {
            Phase::Finished => return,
            Phase::Waiting => {
                if let Some(l) = &self.plan.model.lora {
                    m.lora_change(l, -1, 0);
                }
            }
            Phase::Running => {
                if let Some(l) = &self.plan.model.lora {
                    m.lora_change(l, 0, -1);
                }
            }
        }
        for _ in &self.plan.choices {
            m.finished(Finished::Abort);
        }
    }
}
