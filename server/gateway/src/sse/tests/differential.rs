//! The scanner against `sse-stream`, a maintained SSE parser that follows the WHATWG specification: on random event
//! streams (comments, `event:`, `id:`, `retry:` lines, data on one line or several, wherever in the event, any line
//! ends, any chunking), the events whose data the scanner reads are the events the parser reads; and what the
//! scanner forwards, read by the same parser, is the engine's events less the usage the client did not ask for.

use super::super::{Output, SseScanner};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use proptest::prelude::*;
use serde_json::Value;

/// The data of each event that has data, as `sse-stream` reads `chunks`.
fn parsed(chunks: Vec<Vec<u8>>) -> Vec<String> {
    let input = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, std::convert::Infallible>(Bytes::from(c))),
    );
    let events: Vec<_> = sse_stream::SseByteStream::new(input)
        .collect::<Vec<_>>()
        .now_or_never()
        .unwrap_or_default();
    events
        .into_iter()
        .map(|e| e.expect("valid SSE"))
        .filter_map(|e| e.data)
        .collect()
}

/// One line of an event, without its line end.
#[derive(Debug, Clone)]
enum Line {
    Comment(String),
    Field(&'static str, String),
}

/// An event: its data (JSON fields, written over one or more `data:` lines), other lines, and where they go.
#[derive(Debug, Clone)]
struct Event {
    lines: Vec<Line>,
    eols: Vec<&'static str>,
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,20}",
        Just("data: {\"usage\":{\"prompt_tokens\":5}}".to_string()),
        Just(" data:".to_string()),
    ]
}

fn usage_json(n: u64) -> String {
    format!("{{\"prompt_tokens\":3,\"completion_tokens\":{n}}}")
}

/// The JSON fields of a data event: `(key, value)`, usage among them or not, in any order.
fn fields() -> impl Strategy<Value = Vec<(String, String)>> {
    (
        "[ -~]{0,12}",
        prop::option::of(0u64..100),
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(content, usage, empty_choices, at)| {
            let choices = if empty_choices {
                "[]".to_string()
            } else {
                serde_json::json!([{"delta": {"content": content}}]).to_string()
            };
            let mut f = vec![
                ("id".to_string(), "\"chatcmpl-1\"".to_string()),
                ("choices".to_string(), choices),
                (
                    "note".to_string(),
                    Value::from(format!(",\"usage\":{}", usage_json(1))).to_string(),
                ),
            ];
            if let Some(n) = usage {
                f.insert(at.index(f.len() + 1), ("usage".to_string(), usage_json(n)));
            }
            f
        })
}

fn event() -> impl Strategy<Value = Event> {
    let data = (
        fields(),
        prop::collection::vec(any::<bool>(), 4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(fields, breaks, space, done)| {
            if done {
                return vec![Line::Field("data", " [DONE]".into())];
            }
            // The fields over one or more lines, a line broken after a field's comma where `breaks` says.
            let mut lines = vec![String::from("{")];
            for (i, (k, v)) in fields.iter().enumerate() {
                let last = lines.len() - 1;
                lines[last] += &format!("\"{k}\":{v}");
                if i + 1 < fields.len() {
                    lines[last] += ",";
                    if breaks[i % breaks.len()] {
                        lines.push(String::new());
                    }
                }
            }
            let last = lines.len() - 1;
            lines[last] += "}";
            let pad = if space { " " } else { "" };
            lines
                .into_iter()
                .map(|l| Line::Field("data", format!("{pad}{l}")))
                .collect()
        });
    let other = prop::collection::vec(
        prop_oneof![
            text().prop_map(Line::Comment),
            text().prop_map(|t| Line::Field("event", t)),
            "[0-9]{1,3}".prop_map(|t| Line::Field("id", t)),
            "[0-9]{1,4}".prop_map(|t| Line::Field("retry", t)),
        ],
        0..3,
    );
    let eol = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
    (
        data,
        other,
        any::<prop::sample::Index>(),
        prop::collection::vec(eol, 8),
    )
        .prop_map(|(data, other, at, eols)| {
            let mut lines = other;
            let at = at.index(lines.len() + 1);
            for (i, l) in data.into_iter().enumerate() {
                lines.insert(at + i, l);
            }
            Event { lines, eols }
        })
}

fn write(events: &[Event]) -> Vec<u8> {
    let mut out = String::new();
    for e in events {
        let mut previous = "";
        for (i, line) in e.lines.iter().enumerate() {
            match line {
                Line::Comment(t) => out += &format!(":{t}"),
                Line::Field(name, value) => out += &format!("{name}:{value}"),
            }
            previous = e.eols[i % e.eols.len()];
            out += previous;
        }
        // A blank line `\n` after a line ended by `\r` would be that line's `\r\n`, not a blank line.
        let blank = e.eols[e.eols.len() - 1];
        out += if previous == "\r" && blank == "\n" {
            "\r\n"
        } else {
            blank
        };
    }
    out.into_bytes()
}

/// What a client that asked for no usage should read of `data`: the usage field taken out, the final usage chunk
/// (`choices` empty) dropped; anything else as it is.
fn without_usage(data: &str) -> Option<String> {
    let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(data) else {
        return Some(data.to_string());
    };
    if o.remove("usage").is_none() {
        return Some(data.to_string());
    }
    if o.get("choices") == Some(&Value::Array(vec![])) {
        return None;
    }
    Some(Value::Object(o).to_string())
}

fn normalized(data: &str) -> String {
    serde_json::from_str::<Value>(data).map_or_else(|_| data.to_string(), |v| v.to_string())
}

fn pieces(bytes: &[u8], raw: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = raw
        .iter()
        .filter(|_| bytes.len() > 1)
        .map(|c| 1 + c % (bytes.len() - 1))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for c in cuts.into_iter().chain(std::iter::once(bytes.len())) {
        out.push(bytes[start..c].to_vec());
        start = c;
    }
    out
}

fn forward(s: &mut SseScanner, chunks: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = chunks
        .iter()
        .map(|c| match s.push(c) {
            Output::Same => c.clone(),
            Output::Rewritten(v) => v,
        })
        .collect();
    out.push(s.finish());
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_scanner_reads_the_events_a_specification_parser_reads(
        events in prop::collection::vec(event(), 1..6),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let stream = write(&events);
        let chunks = pieces(&stream, &raw_cuts);
        let expected = parsed(chunks.clone());
        prop_assert_eq!(expected.len(), events.len());

        // A client that asked for everything: the same bytes, and the same events read.
        let mut all = SseScanner::new(true, true);
        let forwarded = forward(&mut all, &chunks);
        prop_assert_eq!(forwarded.concat(), stream.clone());
        let seen: Vec<String> = all.seen.iter().map(|d| String::from_utf8_lossy(d).into_owned()).collect();
        prop_assert_eq!(&seen, &expected);

        // A client that asked for none: what it reads is the events less their usage.
        let mut none = SseScanner::new(false, false);
        let got: Vec<String> = parsed(forward(&mut none, &chunks)).iter().map(|d| normalized(d)).collect();
        let want: Vec<String> = expected.iter().filter_map(|d| without_usage(d)).map(|d| normalized(&d)).collect();
        prop_assert_eq!(got, want);

        // The usage read is the latest event's.
        let latest = expected.iter().rev().find_map(|d| {
            serde_json::from_str::<Value>(d).ok()?.get("usage")?.get("completion_tokens")?.as_u64()
        });
        prop_assert_eq!(none.usage().map(|u| u.completion_tokens), latest);
        prop_assert_eq!(all.usage(), none.usage());
    }
}
