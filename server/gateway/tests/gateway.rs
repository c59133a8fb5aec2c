//! The gateway over real HTTP, in front of the real engine simulator: every endpoint, every refusal, limits with
//! their headers, streams cut by the client or by the engine, retries over replicas. Usage records are read back
//! from a SQLite database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test or benchmark may panic: that is how it fails

mod common;

use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tollgate_domain::grant::{Limits, ModelCard};
use tollgate_gateway::GatewayConfig;

fn bearer(k: &TestKey) -> String {
    format!("Bearer {}", k.secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completion_is_forwarded_metered_and_limited_in_headers() {
    let engine = sim(fast_sim()).await;
    let k = key(
        1,
        "sub_chat",
        MODEL,
        Limits {
            requests_per_minute: Some(100),
            tokens_per_minute: Some(100_000),
            ..Limits::default()
        },
    );
    let limiter = memory();
    let g = gateway(
        vec![k.entry.clone()],
        &routes(&[engine], 0),
        limiter.clone(),
    )
    .await;
    let r = client()
        .post(g.url("/v1/chat/completions"))
        .header("authorization", bearer(&k))
        .header("x-request-id", "client-req-1")
        .json(&chat_body("Hello there", 12, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["x-request-id"], "client-req-1");
    assert_eq!(h["x-ratelimit-limit-requests"], "100");
    assert_eq!(h["x-ratelimit-remaining-requests"], "99");
    assert_eq!(h["x-ratelimit-limit-tokens"], "100000");
    assert!(h.contains_key("x-ratelimit-reset-tokens"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    let usage = &body["usage"];
    let (prompt, completion) = (
        usage["prompt_tokens"].as_i64().unwrap(),
        usage["completion_tokens"].as_i64().unwrap(),
    );
    assert!(completion > 0 && completion <= 12);

    let records = g.records().await;
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    assert_eq!(
        (rec.prompt_tokens, rec.completion_tokens),
        (prompt, completion)
    );
    assert_eq!(rec.status, 200);
    assert_eq!(rec.request_id, "client-req-1");
    assert_eq!(rec.model, MODEL);
    assert_eq!(rec.endpoint, "chat");
    assert_eq!(rec.key_id.as_deref(), Some(k.entry.key_id.as_str()));
    assert_eq!(rec.source, "key");
    assert_eq!(rec.replica, format!("http://{engine}"));
    assert_eq!((rec.streamed, rec.client_disconnected), (0, 0));
    // Settled to the real usage.
    let c = limiter.counters("sub_chat").unwrap();
    assert_eq!(c.tokens as i64, prompt + completion);
    assert_eq!(c.concurrent, 0);

    // A request id is generated when the client sends none; metrics show the request.
    let r = client()
        .post(g.url("/v1/chat/completions"))
        .header("api-key", &k.secret)
        .json(&chat_body("Hello", 3, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the api-key header works too");
    assert!(r.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let metrics = client()
        .get(g.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "tollgate_gateway_requests_total{{model=\"{MODEL}\",status=\"200\"}} 2"
        )),
        "{metrics}"
    );
}

/// The engine serves the catalog's 2,048-token context; the gateway's default (4,096 completion tokens) would not
/// fit, and vLLM refuses a `max_tokens` that does not fit: the gateway asks for what the context leaves instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_max_tokens_fits_the_models_context() {
    let engine = sim(fast_sim()).await;
    let k = key(2, "sub_nomax", MODEL, Limits::default());
    let limiter = memory();
    let g = gateway(vec![k.entry.clone()], &routes(&[engine], 0), limiter).await;
    let r = client()
        .post(g.url("/v1/chat/completions"))
        .header("authorization", bearer(&k))
        .json(&json!({"model": MODEL, "messages": [{"role": "user", "content": "Hello there"}]}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body["usage"]["completion_tokens"].as_i64().unwrap() > 0);
}

/// vLLM's `/tokenize` and `/detokenize` for the key's model: answered by the engine, counted as requests but free
/// of tokens (a subscription out of tokens for the minute still counts its prompts), metered with zero tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenize_and_detokenize_reach_the_engine_and_cost_no_tokens() {
    let engine = sim(fast_sim()).await;
    let k = key(
        3,
        "sub_tok",
        MODEL,
        Limits {
            requests_per_minute: Some(3),
            tokens_per_minute: Some(1),
            ..Limits::default()
        },
    );
    let g = gateway(vec![k.entry.clone()], &routes(&[engine], 0), memory()).await;
    let post = |path: &'static str, body: Value| g.post_json(&k, path, body);
    let r = post(
        "/tokenize",
        json!({"model": MODEL, "prompt": "Hello there, world"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let t: Value = r.json().await.unwrap();
    let tokens = t["tokens"].as_array().unwrap().clone();
    assert!(
        !tokens.is_empty() && t["count"] == json!(tokens.len()),
        "{t}"
    );
    let r = post(
        "/tokenize",
        json!({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "return_token_strs": true}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let back: Value = post("/detokenize", json!({"model": MODEL, "tokens": tokens}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(back["prompt"].as_str().unwrap().contains("Hello"), "{back}");
    // Refusals in OpenAI's shape: another model, a field for another endpoint, nothing to tokenize.
    let r = post("/tokenize", json!({"model": "gpt-4", "prompt": "x"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = post("/detokenize", json!({"model": MODEL, "prompt": "x"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "tokens", "{e}");
    // The fourth admitted request of the minute is one too many (refusals above were never admitted): requests
    // count, tokens do not (one token a minute would have refused the second).
    let r = post("/tokenize", json!({"model": MODEL, "prompt": "again"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let records = g.records().await;
    let ok: Vec<_> = records.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 3, "{records:?}");
    assert!(ok
        .iter()
        .all(|r| (r.prompt_tokens, r.completion_tokens) == (0, 0)));
    let endpoints: Vec<&str> = ok.iter().map(|r| r.endpoint.as_str()).collect();
    assert_eq!(endpoints.iter().filter(|e| **e == "tokenize").count(), 2);
    assert!(endpoints.contains(&"detokenize"));
}

/// vLLM's rerank and score APIs for reranker models: passed through and metered from the engine's usage (a
/// rerank answer carries only `total_tokens`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerank_and_score_are_passed_through_and_metered() {
    let engine = sim(fast_sim()).await;
    let k = key(
        4,
        "sub_rank",
        MODEL,
        Limits {
            tokens_per_minute: Some(10_000),
            ..Limits::default()
        },
    );
    let g = gateway(vec![k.entry.clone()], &routes(&[engine], 0), memory()).await;
    let post = |path: &'static str, body: Value| g.post_json(&k, path, body);
    let r = post(
        "/v1/rerank",
        json!({"model": MODEL, "query": "gpu inference", "top_n": 2,
               "documents": ["soup recipes", "fast gpu inference servers", {"text": "gpu prices"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    // Nothing is generated here, so only the input is reserved (not the default 4,096 completion tokens).
    let left: u64 = r.headers()["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        left > 9_900,
        "{left} of 10000 tokens left after one small rerank"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["model"], MODEL, "the client's model name comes back");
    let order: Vec<u64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["index"].as_u64().unwrap())
        .collect();
    assert_eq!(order, vec![1, 2], "{body}");
    let rerank_tokens = body["usage"]["total_tokens"].as_i64().unwrap();
    let r = post(
        "/v2/rerank",
        json!({"model": MODEL, "query": "q", "documents": ["a"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = post(
        "/v1/score",
        json!({"model": MODEL, "text_1": "gpu inference", "text_2": ["gpu inference", "soup"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"][0]["score"], 1.0, "{body}");
    assert_eq!(body["data"][1]["score"], 0.0, "{body}");
    let score_tokens = body["usage"]["prompt_tokens"].as_i64().unwrap();
    let r = post(
        "/v1/score",
        json!({"model": MODEL, "text_1": "x", "query": "y"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400, "a rerank field on the score endpoint");

    let records = g.records().await;
    let of = |endpoint: &str| {
        records
            .iter()
            .filter(|r| r.endpoint == endpoint && r.status == 200)
            .map(|r| (r.prompt_tokens, r.completion_tokens))
            .collect::<Vec<_>>()
    };
    assert_eq!(of("rerank").len(), 2);
    assert!(of("rerank").contains(&(rerank_tokens, 0)), "{records:?}");
    assert!(rerank_tokens > 0);
    assert_eq!(of("score"), vec![(score_tokens, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_drop_the_usage_the_client_did_not_ask_for_and_are_metered_exactly() {
    let engine = sim(fast_sim()).await;
    let k = key(2, "sub_stream", MODEL, Limits::default());
    let limiter = memory();
    let g = gateway(
        vec![k.entry.clone()],
        &routes(&[engine], 0),
        limiter.clone(),
    )
    .await;
    let c = client();
    // The same prompt without streaming tells the exact counts.
    let whole: Value = c
        .post(g.url("/v1/chat/completions"))
        .header("authorization", bearer(&k))
        .json(&chat_body("Count me", 20, false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let prompt = whole["usage"]["prompt_tokens"].as_i64().unwrap();
    let completion = whole["usage"]["completion_tokens"].as_i64().unwrap();

    let r = c
        .post(g.url("/v1/chat/completions"))
        .header("authorization", bearer(&k))
        .json(&chat_body("Count me", 20, true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(
        !text.contains("\"usage\""),
        "no usage chunk or field was asked for: {text}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| !c["choices"].as_array().unwrap().is_empty()));

    let r = c
        .post(g.url("/v1/chat/completions"))
        .header("authorization", bearer(&k))
        .json(&json!({"model": MODEL, "messages": [{"role": "user", "content": "Count me"}], "max_tokens": 20,
            "seed": 7, "stream": true, "stream_options": {"include_usage": true}}))
        .send()
        .await
        .unwrap();
    let events = sse_data(&r.text().await.unwrap());
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"]["completion_tokens"].as_i64(),
        Some(completion)
    );
    let others_have_usage = events[..events.len() - 2]
        .iter()
        .any(|e| e.contains("\"usage\""));
    assert!(!others_have_usage, "per-chunk usage was not asked for");

    let records = g.records().await;
    assert_eq!(records.len(), 3);
    for r in &records {
        assert_eq!(
            (r.prompt_tokens, r.completion_tokens, r.status),
            (prompt, completion, 200),
            "{r:?}"
        );
        assert!(r.ttft_ms.is_some() || r.streamed == 0);
    }
    assert_eq!(records.iter().filter(|r| r.streamed == 1).count(), 2);
    assert_eq!(
        limiter.counters("sub_stream").unwrap().tokens as i64,
        3 * (prompt + completion)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_embeddings_and_models() {
    let engine = sim(fast_sim()).await;
    let k = key(3, "sub_misc", MODEL, Limits::default());
    let g = gateway(vec![k.entry.clone()], &routes(&[engine], 0), memory()).await;
    let c = client();
    // Fields a client may not send are refused, naming the field; the engine's `priority` first of all.
    for (field, value) in [
        ("x_unknown", json!({"kept": true})),
        ("priority", json!(-100)),
    ] {
        let mut body = json!({"model": MODEL, "prompt": "Once upon", "max_tokens": 5});
        body[field] = value;
        let refused = c
            .post(g.url("/v1/completions"))
            .header("authorization", bearer(&k))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{field}");
        let err: Value = refused.json().await.unwrap();
        assert_eq!(err["error"]["param"], field);
        assert_eq!(err["error"]["type"], "invalid_request_error");
        assert!(err["error"]["message"].as_str().unwrap().contains(field));
    }
    let r: Value = c
        .post(g.url("/v1/completions"))
        .header("authorization", bearer(&k))
        .json(&json!({"model": MODEL, "prompt": "Once upon", "max_tokens": 5, "top_k": 5, "min_p": 0.1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["object"], "text_completion");
    let e = c
        .post(g.url("/v1/embeddings"))
        .header("authorization", bearer(&k))
        .json(&json!({"model": MODEL, "input": ["a b c", "d"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(e.status(), 200);
    let e: Value = e.json().await.unwrap();
    assert_eq!(e["data"].as_array().unwrap().len(), 2);
    let embed_prompt = e["usage"]["prompt_tokens"].as_i64().unwrap();

    let models: Value = c
        .get(g.url("/v1/models"))
        .header("authorization", bearer(&k))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    let data = models["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    let ModelCard {
        id,
        owned_by,
        context_length,
        ..
    } = card();
    assert_eq!(data[0]["id"], json!(id));
    assert_eq!(data[0]["owned_by"], json!(owned_by));
    assert_eq!(data[0]["context_length"], json!(context_length));
    let one = c
        .get(g.url(&format!("/v1/models/{MODEL}")))
        .header("authorization", bearer(&k))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let other = c
        .get(g.url("/v1/models/gpt-4"))
        .header("authorization", bearer(&k))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let anon = c.get(g.url("/v1/models")).send().await.unwrap();
    assert_eq!(anon.status(), 401);
    // Every answer carries a request id a client can quote, the refusals too: made up when the client sent
    // none (unique), the client's own when it did.
    let id_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let ids = [id_of(&one), id_of(&other), id_of(&anon)];
    assert!(ids.iter().all(|id| id.starts_with("req_")), "{ids:?}");
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    let quoted = c
        .get(g.url("/v1/models"))
        .header("x-request-id", "client-models-1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (quoted.status().as_u16(), id_of(&quoted).as_str()),
        (401, "client-models-1")
    );
    let unauthorized_chat = c
        .post(g.url("/v1/chat/completions"))
        .json(&chat_body("hi", 4, false))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized_chat.status(), 401);
    assert!(id_of(&unauthorized_chat).starts_with("req_"));

    let records = g.records().await;
    assert_eq!(
        records.iter().filter(|r| r.status == 400).count(),
        2,
        "the two refused requests are recorded, as 400s"
    );
    let records: Vec<_> = records.into_iter().filter(|r| r.status != 400).collect();
    let endpoints: Vec<&str> = records.iter().map(|r| r.endpoint.as_str()).collect();
    assert_eq!(
        records.len(),
        2,
        "model listings are not metered: {endpoints:?}"
    );
    assert!(endpoints.contains(&"completions") && endpoints.contains(&"embeddings"));
    let emb = records.iter().find(|r| r.endpoint == "embeddings").unwrap();
    assert_eq!(
        (emb.prompt_tokens, emb.completion_tokens),
        (embed_prompt, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_status_and_openai_body() {
    let engine = sim(fast_sim()).await;
    let good = key(10, "sub_ok", MODEL, Limits::default());
    let mut revoked = key(11, "sub_ok", MODEL, Limits::default());
    revoked.entry.revoked = true;
    let mut expired = key(12, "sub_ok", MODEL, Limits::default());
    expired.entry.expires_at = Some(tollgate_domain::time::Millis(1));
    let mut suspended = key(13, "sub_susp", MODEL, Limits::default());
    Arc::make_mut(&mut suspended.entry.grant).active = false;
    let other_model = key(14, "sub_other", "mistral", Limits::default());
    let unrouted = key(15, "sub_unrouted", "qwen", Limits::default());
    let g = gateway_with(
        vec![
            good.entry.clone(),
            revoked.entry.clone(),
            expired.entry.clone(),
            suspended.entry.clone(),
            other_model.entry.clone(),
            unrouted.entry.clone(),
        ],
        &routes(&[engine], 0),
        memory(),
        GatewayConfig {
            body_limit: 4096,
            ..no_holding()
        },
    )
    .await;
    let c = client();
    let send = |auth: Option<String>, body: String| {
        let mut req = c
            .post(g.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let body: Value = r.json().await.unwrap();
            (
                status,
                body["error"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                body,
                retry,
            )
        }
    };
    let ok = chat_body("hi", 2, false).to_string();
    let cases = [
        (None, ok.clone(), 401, "invalid_api_key"),
        (
            Some("Bearer tg-nope".to_string()),
            ok.clone(),
            401,
            "invalid_api_key",
        ),
        (
            Some(format!("Bearer {}x", &good.secret[..good.secret.len() - 1])),
            ok.clone(),
            401,
            "invalid_api_key",
        ),
        (Some(bearer(&revoked)), ok.clone(), 401, "revoked_api_key"),
        (Some(bearer(&expired)), ok.clone(), 401, "expired_api_key"),
        (
            Some(bearer(&suspended)),
            ok.clone(),
            403,
            "subscription_suspended",
        ),
        (
            Some(bearer(&other_model)),
            ok.clone(),
            404,
            "model_not_found",
        ),
        (
            Some(bearer(&good)),
            "{\"model\": ".to_string(),
            400,
            "invalid_request",
        ),
        (
            Some(bearer(&good)),
            json!({"model": MODEL, "messages": [], "n": 0}).to_string(),
            400,
            "invalid_request",
        ),
        (
            Some(bearer(&good)),
            json!({"model": MODEL, "messages": [{"role": "user", "content": "x".repeat(5000)}]})
                .to_string(),
            413,
            "request_too_large",
        ),
        (
            Some(bearer(&unrouted)),
            json!({"model": "qwen", "messages": []}).to_string(),
            503,
            "no_replica",
        ),
    ];
    for (auth, body, status, code) in cases {
        let (s, c, full, _) = send(auth.clone(), body).await;
        assert_eq!((s, c.as_str()), (status, code), "{auth:?}: {full}");
        assert!(full["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(full["error"].get("type").is_some() && full["error"].get("param").is_some());
    }
    // The engine's own refusals pass through (a prompt that does not fit its context).
    let (s, _, full, _) = send(Some(bearer(&good)), json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100_000}).to_string()).await;
    assert_eq!(s, 400, "{full}");

    // A model whose replicas are starting says when to come back.
    g.gw.replace_routes(&routes(&[], 2));
    let (s, c, _, retry) = send(Some(bearer(&good)), ok.clone()).await;
    assert_eq!(
        (s, c.as_str(), retry.as_deref()),
        (503, "no_replica", Some("5"))
    );

    // Authenticated refusals are metered (with zero tokens); anonymous ones are not.
    let records = g.records().await;
    assert!(records
        .iter()
        .all(|r| r.prompt_tokens + r.completion_tokens == 0));
    let mut statuses: Vec<i64> = records.iter().map(|r| r.status).collect();
    statuses.sort();
    // The suspended key is refused before it is resolved to a subscription: no record.
    assert_eq!(statuses, vec![400, 400, 400, 404, 413, 503, 503]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_429_with_retry_after_and_headers() {
    let engine = sim(fast_sim()).await;
    let rpm = key(
        20,
        "sub_rpm",
        MODEL,
        Limits {
            requests_per_minute: Some(2),
            ..Limits::default()
        },
    );
    let tpm = key(
        21,
        "sub_tpm",
        MODEL,
        Limits {
            tokens_per_minute: Some(60),
            ..Limits::default()
        },
    );
    let monthly = key(
        22,
        "sub_month",
        MODEL,
        Limits {
            monthly_tokens: Some(10),
            ..Limits::default()
        },
    );
    let g = gateway(
        vec![rpm.entry.clone(), tpm.entry.clone(), monthly.entry.clone()],
        &routes(&[engine], 0),
        memory(),
    )
    .await;
    let c = client();
    let post = |k: &TestKey, max_tokens: u32| {
        c.post(g.url("/v1/chat/completions"))
            .header("authorization", bearer(k))
            .json(&chat_body("hi", max_tokens, false))
            .send()
    };
    assert_eq!(post(&rpm, 2).await.unwrap().status(), 200);
    let second = post(&rpm, 2).await.unwrap();
    assert_eq!(second.headers()["x-ratelimit-remaining-requests"], "0");
    let third = post(&rpm, 2).await.unwrap();
    assert_eq!(third.status(), 429);
    let h = third.headers();
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(h["x-ratelimit-limit-requests"], "2");
    assert_eq!(h["x-ratelimit-remaining-requests"], "0");
    assert!(h.contains_key("x-ratelimit-reset-requests"));
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "requests");

    // Tokens: the reservation (prompt estimate + max_tokens) must fit what is left.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = post(&tpm, 10).await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert_eq!(r.headers()["x-ratelimit-limit-tokens"], "60");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["type"], "tokens");
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 200).count() >= 1);

    // The monthly quota: `insufficient_quota`, like OpenAI's.
    let r = post(&monthly, 50).await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "a reservation bigger than the whole quota is capped to it"
    );
    // The quota and what is left of it (the whole quota reserved by this request) ride along.
    assert_eq!(r.headers()["x-ratelimit-limit-tokens-month"], "10");
    assert_eq!(r.headers()["x-ratelimit-remaining-tokens-month"], "0");
    let r = post(&monthly, 50).await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-ratelimit-limit-tokens-month"], "10");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_stream_is_recorded_and_its_reservation_refunded() {
    // Real decode time, so the stream is still running when the client leaves.
    let mut config = fast_sim();
    config.latency.decode_ms = 20.0;
    let engine = sim(config).await;
    let k = key(
        30,
        "sub_leave",
        MODEL,
        Limits {
            tokens_per_minute: Some(100_000),
            max_concurrent: Some(4),
            ..Limits::default()
        },
    );
    let limiter = memory();
    let g = gateway(
        vec![k.entry.clone()],
        &routes(&[engine], 0),
        limiter.clone(),
    )
    .await;
    let mut r = client()
        .post(g.url("/v1/chat/completions"))
        .header("authorization", bearer(&k))
        .json(&json!({"model": MODEL, "messages": [{"role": "user", "content": "go on"}], "max_tokens": 500,
            "ignore_eos": true, "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut got = 0;
    while got < 3 {
        if r.chunk().await.unwrap().is_some() {
            got += 1;
        }
    }
    // While it runs, the whole reservation is held.
    let held = limiter.counters("sub_leave").unwrap();
    assert_eq!(held.concurrent, 1);
    assert!(held.tokens >= 500);
    drop(r);

    let records = g.wait_records(1).await;
    let rec = &records[0];
    assert_eq!(rec.client_disconnected, 1, "{rec:?}");
    assert_eq!(rec.streamed, 1);
    assert!(
        rec.completion_tokens >= 2 && rec.completion_tokens < 500,
        "{rec:?}"
    );
    assert!(rec.prompt_tokens > 0);
    let after = limiter.counters("sub_leave").unwrap();
    assert_eq!(after.concurrent, 0);
    assert_eq!(
        after.tokens as i64,
        rec.prompt_tokens + rec.completion_tokens,
        "reservation refunded down to what was used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_failing_before_the_first_byte_is_retried_on_another() {
    let mut failing = fast_sim();
    failing.faults.error_rate = 1.0;
    let broken = sim(failing).await;
    let dead = dead_addr().await;
    let healthy = sim(fast_sim()).await;
    let k = key(40, "sub_retry", MODEL, Limits::default());
    let g = gateway(
        vec![k.entry.clone()],
        &routes(&[broken, dead, healthy], 0),
        memory(),
    )
    .await;
    let c = client();
    for stream in [false, true, false, true, false, true] {
        let r = c
            .post(g.url("/v1/chat/completions"))
            .header("authorization", bearer(&k))
            .json(&chat_body("retry me", 4, stream))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(!text.contains("error"), "{text}");
    }
    let records = g.records().await;
    assert_eq!(records.len(), 6);
    assert!(records
        .iter()
        .all(|r| r.replica == format!("http://{healthy}") && r.status == 200));
    let metrics = c
        .get(g.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("tollgate_gateway_upstream_errors_total"))
        .unwrap();
    let errors: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(errors >= 1.0, "{line}");

    // With only failing replicas, the client gets one clear 502 after the attempts.
    g.gw.replace_routes(&routes(&[broken, dead], 0));
    let r = c
        .post(g.url("/v1/chat/completions"))
        .header("authorization", bearer(&k))
        .json(&chat_body("x", 2, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_failing_mid_stream_ends_it_with_an_error_event_and_usage_is_recorded() {
    let mut cutting = fast_sim();
    cutting.faults.cut_after_tokens = Some(3);
    let engine = sim(cutting).await;
    let k = key(
        50,
        "sub_cut",
        MODEL,
        Limits {
            tokens_per_minute: Some(100_000),
            ..Limits::default()
        },
    );
    let limiter = memory();
    let g = gateway(
        vec![k.entry.clone()],
        &routes(&[engine], 0),
        limiter.clone(),
    )
    .await;
    let r = client()
        .post(g.url("/v1/chat/completions"))
        .header("authorization", bearer(&k))
        .json(&json!({"model": MODEL, "messages": [{"role": "user", "content": "cut"}], "max_tokens": 50,
            "ignore_eos": true, "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r
        .text()
        .await
        .expect("the stream ends cleanly, not with a broken connection");
    let events = sse_data(&text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{text}");
    assert!(!text.contains("[DONE]"));
    let records = g.records().await;
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    assert_eq!((rec.status, rec.client_disconnected), (502, 0));
    assert!(
        rec.completion_tokens >= 1 && rec.completion_tokens <= 3,
        "{rec:?}"
    );
    assert_eq!(
        limiter.counters("sub_cut").unwrap().tokens as i64,
        rec.prompt_tokens + rec.completion_tokens
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_routes_swap_while_serving() {
    let engine = sim(fast_sim()).await;
    let k = key(60, "sub_swap", MODEL, Limits::default());
    let g = gateway(vec![], &routes(&[engine], 0), memory()).await;
    let c = client();
    let post = || {
        c.post(g.url("/v1/chat/completions"))
            .header("authorization", bearer(&k))
            .json(&chat_body("x", 2, false))
            .send()
    };
    assert_eq!(post().await.unwrap().status(), 401);
    g.gw.replace_keys(tollgate_domain::grant::KeySnapshot::new([k.entry.clone()]));
    assert_eq!(post().await.unwrap().status(), 200);
    g.gw.replace_routes(&tollgate_gateway::Routes::default());
    assert_eq!(post().await.unwrap().status(), 503);
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// The playground's way in: a grant the server resolved (no key) is served like a key's request, shares the
/// subscription's limits with its keys, and is metered as playground traffic without a key id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_request_needs_no_key_shares_the_limits_and_is_metered_as_playground() {
    use axum::body::Body;
    use tollgate_domain::grant::{Grant, KeySnapshot};
    use tollgate_gateway::request::Endpoint;

    let engine = sim(fast_sim()).await;
    let k = key(
        3,
        "sub_play",
        MODEL,
        Limits {
            requests_per_minute: Some(2),
            ..Limits::default()
        },
    );
    let g = gateway(vec![k.entry.clone()], &routes(&[engine], 0), memory()).await;
    assert!(
        g.gw.grant_of("sub_play").is_none(),
        "no grants published yet"
    );
    g.gw.replace_keys(
        KeySnapshot::new(vec![k.entry.clone()])
            .with_models([card()])
            .with_grants([k.entry.grant.clone()]),
    );
    let grant = g.gw.grant_of("sub_play").expect("the subscription's grant");
    assert!(Arc::ptr_eq(&grant, &k.entry.grant));
    let serve = |grant: Arc<Grant>| {
        g.gw.serve_granted(
            Endpoint::Chat,
            grant,
            http::HeaderMap::new(),
            Body::from(chat_body("Hi", 4, false).to_string()),
        )
    };

    let r = serve(grant.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "1");
    let r = client()
        .post(g.url("/v1/chat/completions"))
        .header("authorization", bearer(&k))
        .json(&chat_body("Hi", 4, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-ratelimit-remaining-requests"],
        "0",
        "one budget"
    );
    let r = serve(grant.clone()).await;
    assert_eq!(r.status(), 429);
    let suspended = Arc::new(Grant {
        active: false,
        ..(*grant).clone()
    });
    assert_eq!(serve(suspended).await.status(), 403);

    let mut records = g.wait_records(3).await;
    records.sort_by_key(|r| r.status);
    let seen: Vec<(i64, &str, Option<&str>)> = records
        .iter()
        .map(|r| (r.status, r.source.as_str(), r.key_id.as_deref()))
        .collect();
    assert_eq!(seen.len(), 3, "{records:?}");
    assert!(seen.contains(&(200, "playground", None)), "{seen:?}");
    assert!(
        seen.contains(&(200, "key", Some(k.entry.key_id.as_str()))),
        "{seen:?}"
    );
    assert!(seen.contains(&(429, "playground", None)), "{seen:?}");
}
