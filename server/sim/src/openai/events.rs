//! Streams of named server-sent events (`event: <name>\ndata: <json>\n\n`), as Anthropic's Messages API and OpenAI's
//! Responses API write them: one answer (choice 0), opened before its first token and closed after its last. The
//! events are built as JSON values: these APIs are not the simulator's measured path (chat completions are, with
//! their hand-written chunks in `wire.rs`).

use std::io;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::openai::plan::Plan;
use crate::openai::run::{Run, Step};

/// The events of one streaming API.
pub trait Events: Send + 'static {
    /// What comes before the first token.
    fn open(&mut self, plan: &Plan, out: &mut String);
    /// What carries token `step` of the answer.
    fn token(&mut self, plan: &Plan, step: usize, out: &mut String);
    /// What comes after the last token.
    fn close(&mut self, plan: &Plan, out: &mut String);
}

/// Appends one event.
pub fn event(out: &mut String, name: &str, data: &Value) {
    out.push_str("event: ");
    out.push_str(name);
    out.push_str("\ndata: ");
    out.push_str(&data.to_string());
    out.push_str("\n\n");
}

struct State<E> {
    run: Run,
    events: E,
    opened: bool,
    ended: bool,
}

impl<E: Events> State<E> {
    async fn next(&mut self) -> Option<Result<Bytes, io::Error>> {
        let mut out = String::new();
        loop {
            if self.ended {
                return None;
            }
            match self.run.next_step().await {
                Step::Tokens(step) => {
                    if !self.opened {
                        self.opened = true;
                        self.events.open(&self.run.plan, &mut out);
                    }
                    let s = step as usize;
                    if self
                        .run
                        .plan
                        .choices
                        .first()
                        .is_some_and(|c| s < c.token_ends.len())
                    {
                        self.events.token(&self.run.plan, s, &mut out);
                    }
                }
                Step::Cut => {
                    self.ended = true;
                    tokio::task::yield_now().await;
                    return Some(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "tollgate-sim fault injection: connection cut",
                    )));
                }
                Step::Done => {
                    self.ended = true;
                    if !self.opened {
                        self.opened = true;
                        self.events.open(&self.run.plan, &mut out);
                    }
                    self.events.close(&self.run.plan, &mut out);
                }
            }
            if !out.is_empty() {
                return Some(Ok(Bytes::from(out)));
            }
        }
    }
}

/// The streamed answer of `run`.
pub fn stream<E: Events>(run: Run, events: E) -> Response {
    let state = State {
        run,
        events,
        opened: false,
        ended: false,
    };
    sse_response(futures_util::stream::unfold(state, |mut st| async move {
        let item = st.next().await?;
        Some((item, st))
    }))
}

/// A `text/event-stream` answer whose body is `events`, sent as they come.
pub fn sse_response(
    events: impl futures_util::Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")],
        Body::from_stream(events),
    )
        .into_response()
}
