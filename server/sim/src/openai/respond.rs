//! Answers a planned chat or completion request: a JSON body, or an SSE stream whose
//! chunks are produced as the simulated engine emits tokens (one future per stream, no
//! extra task), ending in `data: [DONE]`. Faults (500, cut, stall) apply here.

use std::io;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::ApiError;
use crate::openai::plan::Plan;
use crate::openai::run::{Run, Step};
use crate::openai::wire::{self, Api, ChunkWriter};
use crate::rng::random_uuid_hex;
use crate::state::SharedState;

/// Serves a validated plan.
pub async fn respond(state: SharedState, api: Api, plan: Plan) -> Response {
    if plan.faults.fail {
        return ApiError::internal(
            "Simulated engine failure (tollgate-sim fault injection: error_rate).",
        )
        .into_response();
    }
    let id = match api {
        Api::Chat => format!("chatcmpl-{}", random_uuid_hex()),
        Api::Completion => format!("cmpl-{}", random_uuid_hex()),
    };
    let created = wire::now_unix();
    let mut run = Run::new(state, plan);
    if run.plan.stream {
        return stream(api, &id, created, run);
    }
    if !run.run_to_end().await {
        return cut_response("application/json");
    }
    let body = match api {
        Api::Chat => wire::chat_response(&id, created, &run.plan),
        Api::Completion => wire::completion_response(&id, created, &run.plan),
    };
    Json(body).into_response()
}

/// Headers, then a body that fails at once: the client sees the connection drop.
fn cut_response(content_type: &'static str) -> Response {
    let body = Body::from_stream(futures_util::stream::once(async {
        // Let the server flush the headers first, so the cut is always mid-body.
        tokio::task::yield_now().await;
        Err::<Bytes, io::Error>(cut_error())
    }));
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn cut_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "tollgate-sim fault injection: connection cut",
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Tokens,
    Usage,
    Done,
    End,
}

struct SseState {
    run: Run,
    writer: ChunkWriter,
    api: Api,
    phase: Phase,
}

impl SseState {
    async fn next(&mut self) -> Option<Result<Bytes, io::Error>> {
        loop {
            match self.phase {
                Phase::Tokens => match self.run.next_step().await {
                    Step::Tokens(step) => {
                        let chunk = self.step_chunks(step);
                        if !chunk.is_empty() {
                            return Some(Ok(Bytes::from(chunk)));
                        }
                    }
                    Step::Cut => {
                        self.phase = Phase::End;
                        // Let the server flush what was sent (headers included) first.
                        tokio::task::yield_now().await;
                        return Some(Err(cut_error()));
                    }
                    Step::Done => {
                        self.phase = if self.run.plan.include_usage {
                            Phase::Usage
                        } else {
                            Phase::Done
                        }
                    }
                },
                Phase::Usage => {
                    self.phase = Phase::Done;
                    let mut out = String::new();
                    let usage = wire::usage_json(
                        self.run.plan.prompt_tokens,
                        self.run.plan.completion_tokens(),
                    );
                    self.writer.usage_chunk(&mut out, &usage);
                    return Some(Ok(Bytes::from(out)));
                }
                Phase::Done => {
                    self.phase = Phase::End;
                    return Some(Ok(Bytes::from_static(wire::DONE.as_bytes())));
                }
                Phase::End => return None,
            }
        }
    }

    fn step_chunks(&self, step: u32) -> String {
        let plan = &self.run.plan;
        let mut out = String::with_capacity(256 * plan.choices.len().min(8));
        let usage = plan
            .continuous_usage
            .then(|| wire::usage_json(plan.prompt_tokens, self.run.completion_tokens_so_far()));
        if step == 0 && self.api == Api::Chat {
            for i in 0..plan.choices.len() {
                self.writer.role_chunk(
                    &mut out,
                    i,
                    plan.continuous_usage
                        .then(|| wire::usage_json(plan.prompt_tokens, 0))
                        .as_deref(),
                );
            }
        }
        let s = step as usize;
        for (i, c) in plan.choices.iter().enumerate() {
            let n = c.token_ends.len();
            if s >= n {
                continue;
            }
            let text = c.token_text(s);
            let finish = (s + 1 == n).then(|| (c.finish_reason.as_str(), c.stop_reason.as_deref()));
            if let Some(call) = &c.tool_call {
                let named = (s == 0).then_some(call);
                let reason = finish.map(|(r, _)| r);
                self.writer
                    .tool_chunk(&mut out, i, named, text, reason, usage.as_deref());
                continue;
            }
            if text.is_empty() && finish.is_none() {
                continue;
            }
            self.writer
                .token_chunk(&mut out, i, text, finish, usage.as_deref());
        }
        out
    }
}

fn stream(api: Api, id: &str, created: u64, run: Run) -> Response {
    let writer = ChunkWriter::new(api, id, created, &run.plan.model.response_name);
    let state = SseState {
        run,
        writer,
        api,
        phase: Phase::Tokens,
    };
    crate::openai::events::sse_response(futures_util::stream::unfold(state, |mut st| async move {
        let item = st.next().await?;
        Some((item, st))
    }))
}
