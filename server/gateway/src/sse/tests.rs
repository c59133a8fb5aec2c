use super::*;
use crate::request::Dialect;
use proptest::prelude::*;

mod differential;
mod old;

const ROLE: &str = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":{\"prompt_tokens\":9,\"total_tokens\":9,\"completion_tokens\":0}}\n\n";
const TOKEN: &str = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The\"}}],\"usage\":{\"prompt_tokens\":9,\"total_tokens\":10,\"completion_tokens\":1}}\n\n";
const FINAL: &str = "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"total_tokens\":10,\"completion_tokens\":1}}\n\n";
const DONE: &str = "data: [DONE]\n\n";

fn whole_stream() -> String {
    [ROLE, TOKEN, FINAL, DONE].concat()
}

/// The stream with each line end written as `eol`.
fn with_eol(s: &str, eol: &str) -> String {
    s.replace('\n', eol)
}

/// Feeds `input` cut into pieces at `cuts` and returns what the client gets.
fn run(scanner: &mut SseScanner, input: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        let piece = &input[start..c];
        match scanner.push(piece) {
            Output::Same => out.extend_from_slice(piece),
            Output::Rewritten(v) => out.extend_from_slice(&v),
        }
        start = c;
    }
    out.extend_from_slice(&scanner.finish());
    out
}

fn without_usage_field(s: &str) -> String {
    let at = s.rfind(",\"usage\":").unwrap();
    let end = s.rfind('}').unwrap();
    format!("{}{}", &s[..at], &s[end..])
}

const EOLS: [&str; 3] = ["\n", "\r\n", "\r"];

#[test]
fn a_client_that_asked_nothing_gets_neither_usage_chunk_nor_usage_fields_whatever_the_line_ends() {
    for eol in EOLS {
        let input = with_eol(&whole_stream(), eol);
        let mut s = SseScanner::new(false, false);
        let out = run(&mut s, input.as_bytes(), &[]);
        let expected = [
            without_usage_field(ROLE),
            without_usage_field(TOKEN),
            DONE.into(),
        ]
        .concat();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            with_eol(&expected, eol),
            "{eol:?}"
        );
        assert_eq!(
            s.usage(),
            Some(Usage {
                prompt_tokens: 9,
                completion_tokens: 1
            }),
            "{eol:?}"
        );
        assert!(s.done(), "{eol:?}");
        assert_eq!(s.data_events(), 3, "{eol:?}");
    }
}

#[test]
fn each_event_is_forwarded_in_the_chunk_that_ends_it_whatever_the_line_ends() {
    for eol in ["\n", "\r\n", "\r", "\r\n\n", "\n\r"] {
        let events: Vec<String> = [ROLE, TOKEN, FINAL, DONE]
            .iter()
            .map(|e| e.replace("\n\n", "").to_string() + "\n" + eol)
            .map(|e| e.replacen('\n', &eol[..1], 1))
            .collect();
        let mut s = SseScanner::new(true, true);
        for e in &events {
            assert_eq!(s.push(e.as_bytes()), Output::Same, "{e:?}");
        }
        assert_eq!(s.usage().map(Usage::total), Some(10), "{eol:?}");
        assert!(s.done());
        assert!(s.finish().is_empty());
    }
}

#[test]
fn a_crlf_cut_between_its_cr_and_lf_is_one_line_end() {
    let input = with_eol(&whole_stream(), "\r\n");
    let mut whole = SseScanner::new(false, false);
    let expected = run(&mut whole, input.as_bytes(), &[]);
    let bytes = input.as_bytes();
    let crs: Vec<usize> = (1..bytes.len())
        .filter(|&i| bytes[i - 1] == b'\r')
        .collect();
    assert_eq!(crs.len(), 8);
    for &cut in &crs {
        let mut s = SseScanner::new(false, false);
        assert_eq!(run(&mut s, bytes, &[cut]), expected, "cut {cut}");
        assert_eq!(s.usage(), whole.usage());
    }
    // A blank line ended by a last `\r`: the event goes at once, the `\n` that follows is its line end's rest.
    let mut s = SseScanner::new(false, false);
    let first = &bytes[..ROLE.len() + 1];
    match s.push(first) {
        Output::Rewritten(v) => assert!(v.ends_with(b"}\r\n\r"), "{v:?}"),
        Output::Same => panic!("the usage field is cut"),
    }
    assert_eq!(s.push(b"\n"), Output::Same);
    // And when that event was dropped (the final usage chunk), so is its `\n`.
    let last = with_eol(FINAL, "\r\n");
    let mut s = SseScanner::new(false, false);
    assert_eq!(
        s.push(&last.as_bytes()[..last.len() - 1]),
        Output::Rewritten(vec![])
    );
    let done = with_eol(DONE, "\r\n");
    assert_eq!(
        s.push(format!("\n{done}").as_bytes()),
        Output::Rewritten(done.into_bytes())
    );
    assert!(s.done());
}

#[test]
fn events_cut_anywhere_give_the_same_result_whatever_the_line_ends() {
    for eol in ["\n", "\r\n", "\r", "\n\r", "\r\r\n"] {
        let input = with_eol(&whole_stream(), eol);
        let mut whole = SseScanner::new(false, false);
        let expected = run(&mut whole, input.as_bytes(), &[]);
        assert!(whole.usage().is_some() && whole.done(), "{eol:?}");
        for cut in 1..input.len() {
            for second in [cut + 1, cut + 7, input.len() - 1] {
                let cuts: Vec<usize> = if second > cut && second < input.len() {
                    vec![cut, second]
                } else {
                    vec![cut]
                };
                let mut s = SseScanner::new(false, false);
                let out = run(&mut s, input.as_bytes(), &cuts);
                assert_eq!(out, expected, "{eol:?} cuts {cuts:?}");
                assert_eq!(s.usage(), whole.usage(), "{eol:?} cuts {cuts:?}");
                assert!(s.done());
            }
        }
    }
}

#[test]
fn comments_event_id_and_retry_lines_and_data_not_first_are_read() {
    let u = "{\"prompt_tokens\":4,\"completion_tokens\":2}";
    let event = format!(
        ": keep-alive\r\nevent: chunk\r\nid: 17\r\nretry: 100\r\ndata:{{\"choices\":[{{\"delta\":{{}}}}],\"usage\":{u}}}\r\n: after\r\n\r\n"
    );
    let mut s = SseScanner::new(false, false);
    let out = run(&mut s, event.as_bytes(), &[]);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        event.replace(&format!(",\"usage\":{u}"), "")
    );
    assert_eq!(
        s.usage().map(|u| (u.prompt_tokens, u.completion_tokens)),
        Some((4, 2))
    );
    assert_eq!(s.data_events(), 1);
    // Events with no data at all are passed as they are and are no data events.
    let mut s = SseScanner::new(false, false);
    assert_eq!(s.push(b": ping\r\n\r\nevent: x\rid: 1\r\r"), Output::Same);
    assert_eq!(s.data_events(), 0);
    // `data` with no colon is a data line with no value; `data:` with no space too.
    let mut s = SseScanner::new(true, true);
    assert_eq!(s.push(b"data\n\ndata:[DONE]\n\n"), Output::Same);
    assert_eq!((s.data_events(), s.done()), (1, true));
}

#[test]
fn data_on_several_lines_is_read_joined_and_cut_line_by_line() {
    let event = ": c\r\ndata: {\"id\":\"c\",\r\ndata:  \"usage\": {\"prompt_tokens\": 5,\r\ndata: \"completion_tokens\": 3},\r\nevent: e\r\ndata: \"choices\": [{\"delta\": {}}]}\r\n\r\n";
    let mut keep = SseScanner::new(true, true);
    assert_eq!(keep.push(event.as_bytes()), Output::Same);
    assert_eq!(keep.usage().map(Usage::total), Some(8));
    let mut s = SseScanner::new(false, false);
    let out = String::from_utf8(run(&mut s, event.as_bytes(), &[9])).unwrap();
    assert_eq!(
        out,
        ": c\r\ndata: {\"id\":\"c\",\r\ndata: \"choices\": [{\"delta\": {}}]}\r\nevent: e\r\n\r\n"
    );
    assert_eq!(s.usage().map(Usage::total), Some(8));
    // The client's parser sees the same JSON without the usage field.
    let data = lines::joined_data(out.as_bytes());
    let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"id": "c", "choices": [{"delta": {}}]})
    );
}

#[test]
fn usage_is_read_wherever_it_sits_and_the_latest_wins() {
    let first = "data: {\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1},\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n";
    let middle = "data: {\"id\":\"x\", \"usage\": {\"prompt_tokens\": 2, \"completion_tokens\": 2}, \"choices\": [{\"delta\": {\"content\": \"b\"}}]}\n\n";
    let null =
        "data: {\"id\":\"x\",\"usage\":null,\"choices\":[{\"delta\":{\"content\":\"c\"}}]}\n\n";
    let mut s = SseScanner::new(false, false);
    let out = run(&mut s, [first, middle, null].concat().as_bytes(), &[]);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        [
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
            "data: {\"id\":\"x\", \"choices\": [{\"delta\": {\"content\": \"b\"}}]}\n\n",
            null
        ]
        .concat()
    );
    assert_eq!(
        s.usage().map(|u| u.completion_tokens),
        Some(2),
        "null is ignored"
    );
}

#[test]
fn a_usage_field_that_is_not_usage_is_left_alone_and_the_last_good_one_stands() {
    let odd = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}],\"usage\":{\"note\":\"hi\"}}\n\n";
    let mut s = SseScanner::new(false, false);
    let input = [ROLE, TOKEN, odd].concat();
    let out = run(&mut s, input.as_bytes(), &[]);
    assert!(
        String::from_utf8(out).unwrap().ends_with(odd),
        "kept as sent"
    );
    assert_eq!(s.usage().map(|u| u.completion_tokens), Some(1));
}

#[test]
fn json_written_with_spaces_is_read_and_stripped_alike() {
    // As Python's json.dumps writes events (separators ", " and ": ").
    let spaced = |s: &str| s.replace(",\"", ", \"").replace("\":", "\": ");
    let (role, token, last) = (spaced(ROLE), spaced(TOKEN), spaced(FINAL));
    assert!(last.contains("\"choices\": [], \"usage\": {"), "{last}");
    let input = [role.as_str(), token.as_str(), last.as_str(), DONE].concat();
    let mut s = SseScanner::new(false, false);
    let out = String::from_utf8(run(&mut s, input.as_bytes(), &[7, 100])).unwrap();
    let cut = |e: &str| {
        let at = e.rfind(", \"usage\": ").unwrap();
        format!("{}{}", &e[..at], &e[e.rfind('}').unwrap()..])
    };
    assert_eq!(out, [cut(&role), cut(&token), DONE.into()].concat());
    assert_eq!(
        s.usage().map(|u| (u.prompt_tokens, u.completion_tokens)),
        Some((9, 1))
    );
    assert_eq!(
        usage_of_body(
            b"{\"id\": \"x\", \"usage\" : {\"prompt_tokens\": 3, \"completion_tokens\": 5}}"
        ),
        Some(Usage {
            prompt_tokens: 3,
            completion_tokens: 5
        })
    );
}

#[test]
fn a_client_that_asked_for_the_usage_chunk_keeps_it() {
    let input = whole_stream();
    let mut s = SseScanner::new(true, false);
    let out = run(&mut s, input.as_bytes(), &[]);
    let expected = [
        without_usage_field(ROLE),
        without_usage_field(TOKEN),
        FINAL.into(),
        DONE.into(),
    ]
    .concat();
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

#[test]
fn a_client_that_asked_for_everything_gets_the_same_bytes_without_copies() {
    for eol in EOLS {
        let input = with_eol(&whole_stream(), eol);
        let mut s = SseScanner::new(true, true);
        assert_eq!(s.push(input.as_bytes()), Output::Same, "{eol:?}");
        assert_eq!(s.usage().map(Usage::total), Some(10), "{eol:?}");
    }
}

#[test]
fn usage_written_inside_content_is_not_mistaken_for_the_field() {
    // The text of a token mentions usage: escaped quotes, so not a key.
    let tricky = "data: {\"choices\":[{\"delta\":{\"content\":\",\\\"usage\\\":{\\\"prompt_tokens\\\":99}}\"}}]}\n\n";
    let mut s = SseScanner::new(false, false);
    assert_eq!(s.push(tricky.as_bytes()), Output::Same);
    assert_eq!(s.usage(), None);
    // A usage key that is not at the top level is left alone, last or not.
    for inner in [
        "data: {\"a\":{\"x\":1,\"usage\":{\"prompt_tokens\":5}},\"b\":1}\n\n",
        "data: {\"b\":1,\"a\":{\"x\":1,\"usage\":{\"prompt_tokens\":5}}}\n\n",
        "data: {\"choices\":[{\"usage\":{\"prompt_tokens\":5}}],\"b\":1}\n\n",
        // A key that ends with an escaped quote and the word usage.
        "data: {\"say \\\"usage\":{\"prompt_tokens\":5},\"b\":1}\n\n",
        // Strings that look like a usage field, before a real one elsewhere.
        "data: {\"t\":\"}]\\\\\",\"u\":\"\\\"usage\\\":{\\\"prompt_tokens\\\":1}\",\"x\":{\"usage\":{\"prompt_tokens\":5}}}\n\n",
    ] {
        assert_eq!(s.push(inner.as_bytes()), Output::Same, "{inner}");
        assert_eq!(s.usage(), None, "{inner}");
    }
    // The real one after tricky strings is found.
    let real = "data: {\"t\":\"}]\\\\\",\"u\":\"\\\"usage\\\":{}\",\"usage\":{\"prompt_tokens\":5},\"z\":[\"usage\"]}\n\n";
    assert!(matches!(s.push(real.as_bytes()), Output::Rewritten(_)));
    assert_eq!(s.usage().map(Usage::total), Some(5));
}

#[test]
fn adversarial_streams_never_panic() {
    let inputs: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\n\n\n\n".to_vec(),
        b"\r\r\r\n\n\r".to_vec(),
        b"data:".to_vec(),
        b"data".to_vec(),
        b"data: ,\"usage\":\n\n".to_vec(),
        b"data: ,\"usage\":{\r\r".to_vec(),
        b"data: ,\"usage\":{}}\n\n".to_vec(),
        b"data: \"usage\":{\"prompt_tokens\":1}}\n\n".to_vec(),
        b"data: {\"usage\":{\"prompt_tokens\":1}\n\n".to_vec(),
        b"data: {\"usage\":{\"prompt_tokens\":1}},\n\n".to_vec(),
        b"data: ,\"usage\":{\"prompt_tokens\":-1}}\n\n".to_vec(),
        b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":\"\\\"}\"}}\n\n".to_vec(),
        b"data: }}}}},\"usage\":{}}}}}}\n\n".to_vec(),
        b"data: {\"a\":\"\\".to_vec(),
        b"data: {\"a\":\"\\\n\n".to_vec(),
        b"data: {\"a\":[\"usage\":{\"prompt_tokens\":1},\"\\\"]\r\n\r\n".to_vec(),
        b"data: {\ndata: \"usage\":{\"prompt_tokens\":1}\ndata: ,\"x\":[}\n\n".to_vec(),
        vec![0xff; 300],
        [b"data: ".as_slice(), &vec![b'{'; 5000], b"\n\n"].concat(),
        [
            b"data: ".as_slice(),
            &vec![b'['; 5000],
            b"\"usage\":{\"prompt_tokens\":1}\n\n",
        ]
        .concat(),
        b": comment\n\nevent: x\n\n".to_vec(),
    ];
    for input in &inputs {
        for cut in [0, 1, input.len() / 2] {
            for wishes in [(false, false), (true, false), (true, true)] {
                let mut s = SseScanner::new(wishes.0, wishes.1);
                let cuts: Vec<usize> = if cut > 0 && cut < input.len() {
                    vec![cut]
                } else {
                    vec![]
                };
                let out = run(&mut s, input, &cuts);
                assert!(
                    out.len() <= input.len() + 16,
                    "output never grows much: {input:?}"
                );
            }
        }
    }
}

#[test]
fn the_served_model_name_becomes_the_clients_in_every_event_however_cut() {
    let served = |s: &str| s.replace("\"id\":\"c\"", "\"id\":\"c\",\"model\":\"meta/m\"");
    for eol in EOLS {
        let input = with_eol(&served(&whole_stream()), eol);
        for wishes in [(false, false), (true, true)] {
            let mut whole = SseScanner::new(wishes.0, wishes.1);
            let plain = run(&mut whole, with_eol(&whole_stream(), eol).as_bytes(), &[]);
            let expected = String::from_utf8(plain)
                .unwrap()
                .replace("\"id\":\"c\"", "\"id\":\"c\",\"model\":\"m\"");
            for cut in 1..input.len() {
                let mut s = SseScanner::new(wishes.0, wishes.1)
                    .renaming(ModelRename::new("meta/m", "m").map(Arc::new));
                let out = run(&mut s, input.as_bytes(), &[cut]);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    expected,
                    "{eol:?} cut {cut}"
                );
                assert_eq!(s.usage(), whole.usage());
            }
        }
    }
}

#[test]
fn an_oversized_event_is_passed_through_rather_than_held() {
    let mut s = SseScanner::new(false, false);
    let big = vec![b'x'; MAX_EVENT_BYTES + 1];
    match s.push(&big) {
        Output::Rewritten(v) => assert_eq!(v.len(), big.len()),
        Output::Same => panic!("expected a copy"),
    }
    assert!(s.finish().is_empty());
    // Held while under the bound, with any line ends.
    let mut s = SseScanner::new(false, false);
    assert_eq!(s.push(b"data: {\"a\":1}\r\n"), Output::Rewritten(vec![]));
    assert_eq!(s.finish(), b"data: {\"a\":1}\r\n");
}

#[test]
fn usage_is_read_from_whole_bodies() {
    let body = br#"{"id":"x","choices":[{"message":{"content":"\"usage\":{}"}}],"usage":{"prompt_tokens":3,"total_tokens":8,"completion_tokens":5,"prompt_tokens_details":null}}"#;
    assert_eq!(
        usage_of_body(body),
        Some(Usage {
            prompt_tokens: 3,
            completion_tokens: 5
        })
    );
    let emb = br#"{"data":[],"usage":{"prompt_tokens":4,"total_tokens":4}}"#;
    assert_eq!(usage_of_body(emb).map(Usage::total), Some(4));
    let first = br#"{"usage":{"prompt_tokens":4,"completion_tokens":1},"data":[]}"#;
    assert_eq!(usage_of_body(first).map(Usage::total), Some(5));
    for bad in [
        &b""[..],
        b"{",
        b"\"usage\":",
        b"{\"usage\":null}",
        b"{\"usage\":{\"prompt_tokens\":1e99}}",
    ] {
        assert_eq!(usage_of_body(bad), None);
    }
}

const ANTHROPIC: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":4,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\ndata: {\"type\": \"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" \\\"usage\\\":{}\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":5}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

#[test]
fn anthropic_streams_pass_through_and_their_usage_is_read_in_pieces() {
    let input = ANTHROPIC.as_bytes();
    for cut in [0, 40, 200, input.len() / 2] {
        let mut s = SseScanner::new(false, false).dialect(Dialect::Anthropic);
        let cuts: Vec<usize> = (cut > 0).then_some(cut).into_iter().collect();
        assert_eq!(run(&mut s, input, &cuts), input, "nothing is taken out");
        // Input includes the cached tokens; output is message_delta's count, not the number of deltas.
        assert_eq!(
            s.usage(),
            Some(Usage {
                prompt_tokens: 16,
                completion_tokens: 5
            })
        );
        assert!(s.done());
    }
    // Cut before message_delta: each delta seen counts as a token.
    let end = ANTHROPIC.find("event: content_block_stop").unwrap();
    let mut s = SseScanner::new(false, false).dialect(Dialect::Anthropic);
    run(&mut s, &input[..end], &[]);
    assert_eq!(
        s.usage().map(|u| (u.prompt_tokens, u.completion_tokens)),
        Some((16, 3))
    );
    assert!(!s.done());
    let err = String::from_utf8(s.error_event("gone")).unwrap();
    assert!(err.starts_with("event: error\ndata: {"), "{err}");
    assert!(err.contains("\"api_error\""), "{err}");
}

#[test]
fn responses_streams_are_read_from_their_completed_event() {
    let stream = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"r\",\"usage\":null}}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\",\"sequence_number\":1}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"!\",\"sequence_number\":2}\n\n";
    let completed = "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{\"id\":\"r\",\"output\":[],\"usage\":{\"input_tokens\":7,\"output_tokens\":2,\"total_tokens\":9,\"output_tokens_details\":{\"reasoning_tokens\":0}}}}\n\n";
    let mut s = SseScanner::new(false, false).dialect(Dialect::Responses);
    run(&mut s, stream.as_bytes(), &[]);
    assert_eq!(
        s.usage().map(|u| (u.prompt_tokens, u.completion_tokens)),
        Some((0, 2))
    );
    let whole = format!("{stream}{completed}");
    let mut s = SseScanner::new(false, false).dialect(Dialect::Responses);
    assert_eq!(run(&mut s, whole.as_bytes(), &[17, 300]), whole.as_bytes());
    assert_eq!(
        s.usage().map(|u| (u.prompt_tokens, u.completion_tokens)),
        Some((7, 2))
    );
    assert!(s.done());
    // Whole bodies of both APIs.
    let body = br#"{"id":"msg_1","type":"message","content":[{"type":"text","text":"Hi"}],"usage":{"input_tokens":3,"cache_creation_input_tokens":2,"output_tokens":4}}"#;
    assert_eq!(
        usage_of_body(body).map(|u| (u.prompt_tokens, u.completion_tokens)),
        Some((5, 4))
    );
    let body = br#"{"id":"r","object":"response","usage":{"input_tokens":7,"output_tokens":2,"total_tokens":9},"metadata":{}}"#;
    assert_eq!(
        usage_of_body(body).map(|u| (u.prompt_tokens, u.completion_tokens)),
        Some((7, 2))
    );
}

#[test]
fn the_error_event_is_one_json_event() {
    let e = error_event("engine \"failed\"");
    let text = String::from_utf8(e).unwrap();
    let json = text
        .strip_prefix("data: ")
        .unwrap()
        .strip_suffix("\n\n")
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["error"]["message"], "engine \"failed\"");
}

/// Text a model may write, with what could confuse a reader of raw JSON.
fn content() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{0,12}",
        Just("\"usage\":{\"prompt_tokens\":1}".to_string()),
        Just(",\"usage\":{\"prompt_tokens\":7}}".to_string()),
        Just("data: x\n\n\r\r\r\n".to_string()),
        Just("\\\"usage\\\"".to_string()),
        Just("\"choices\":[]".to_string()),
        Just("meta/m".to_string()),
        any::<String>(),
    ]
}

/// A chat stream as vLLM writes it: `data: {json}\n\n` events, compact JSON, usage (when asked for) last on every
/// chunk and in a final chunk with no choices, then `data: [DONE]`.
fn vllm_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(content(), 0..6),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(tokens, continuous, final_chunk, done)| {
            let prompt = 9;
            let mut out = String::new();
            let chunk = |choices: String, n: usize, usage: bool| {
                let mut e = format!(
                    "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"meta/m\",\"choices\":{choices}"
                );
                if usage {
                    e += &format!(
                        ",\"usage\":{{\"prompt_tokens\":{prompt},\"total_tokens\":{},\"completion_tokens\":{n}}}",
                        prompt + n
                    );
                }
                e + "}\n\n"
            };
            for (n, t) in tokens.iter().enumerate() {
                let delta = serde_json::json!([{"index": 0, "delta": {"content": t}, "logprobs": null, "finish_reason": null}]);
                out += &chunk(delta.to_string(), n, continuous);
            }
            if final_chunk {
                out += &chunk("[]".into(), tokens.len(), true);
            }
            if done {
                out += "data: [DONE]\n\n";
            }
            out.into_bytes()
        })
}

/// Cut points for `len` bytes: strictly increasing, inside it (no empty piece).
fn cuts(len: usize, raw: Vec<usize>) -> Vec<usize> {
    let mut c: Vec<usize> = raw
        .into_iter()
        .filter(|_| len > 1)
        .map(|c| 1 + c % (len - 1))
        .collect();
    c.sort_unstable();
    c.dedup();
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// On vLLM's output, cut anywhere, the scanner forwards exactly what the scanner before it forwarded, chunk by
    /// chunk (the same chunks uncopied), and reads the same usage.
    #[test]
    fn on_vllm_output_the_scanner_does_what_it_did(
        stream in vllm_stream(),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..6),
        wishes in (any::<bool>(), any::<bool>(), any::<bool>()),
    ) {
        let rename = || wishes.2.then(|| ModelRename::new("meta/m", "m")).flatten();
        let mut new = SseScanner::new(wishes.0, wishes.1).renaming(rename().map(Arc::new));
        let mut old = old::OldScanner::new(wishes.0, wishes.1).renaming(rename());
        let cuts = cuts(stream.len(), raw_cuts);
        let mut start = 0;
        for &c in cuts.iter().chain(std::iter::once(&stream.len())) {
            let piece = &stream[start..c];
            prop_assert_eq!(new.push(piece), old.push(piece), "piece {}..{}", start, c);
            start = c;
        }
        prop_assert_eq!(new.finish(), old.finish());
        prop_assert_eq!(new.usage(), old.usage());
        prop_assert_eq!(new.done(), old.done());
        prop_assert_eq!(new.data_events(), old.data_events());
    }

    /// Any bytes, cut anywhere: never a panic, and the same output and usage as the whole stream in one piece.
    #[test]
    fn any_bytes_cut_anywhere_give_what_they_give_whole(
        stream in prop::collection::vec(prop_oneof![
            Just(b'\n'), Just(b'\r'), Just(b'"'), Just(b'{'), Just(b'}'), Just(b'\\'), Just(b':'), any::<u8>()
        ], 0..200).prop_map(|mut v| { v.splice(0..0, b"data: {\"usage\":{\"prompt_tokens\":1},".iter().copied()); v }),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..4),
        wishes in (any::<bool>(), any::<bool>()),
    ) {
        let mut whole = SseScanner::new(wishes.0, wishes.1);
        let expected = run(&mut whole, &stream, &[]);
        let mut s = SseScanner::new(wishes.0, wishes.1);
        prop_assert_eq!(run(&mut s, &stream, &cuts(stream.len(), raw_cuts)), expected);
        prop_assert_eq!(s.usage(), whole.usage());
    }
}

#[test]
fn a_recycled_buffer_carries_the_next_rewritten_chunk() {
    // The client asked for no usage: each event's usage field is taken out, so every chunk is rewritten.
    let event = |i: u32| {
        format!("data: {{\"id\":\"{i}\",\"choices\":[{{\"index\":0}}],\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":{i}}}}}\n\n")
    };
    let mut s = SseScanner::new(false, false);
    let Output::Rewritten(first) = s.push(event(1).as_bytes()) else {
        panic!("not rewritten");
    };
    assert_eq!(
        first,
        b"data: {\"id\":\"1\",\"choices\":[{\"index\":0}]}\n\n"
    );
    let reused = first.as_ptr();
    s.recycle(first);
    let Output::Rewritten(second) = s.push(event(2).as_bytes()) else {
        panic!("not rewritten");
    };
    assert_eq!(
        second,
        b"data: {\"id\":\"2\",\"choices\":[{\"index\":0}]}\n\n"
    );
    assert_eq!(second.as_ptr(), reused, "written in the recycled buffer");
    // Without a recycled buffer, a new one.
    let Output::Rewritten(third) = s.push(event(3).as_bytes()) else {
        panic!("not rewritten");
    };
    assert_eq!(
        third,
        b"data: {\"id\":\"3\",\"choices\":[{\"index\":0}]}\n\n"
    );
    assert_eq!(s.usage().map(|u| u.completion_tokens), Some(3));
}
