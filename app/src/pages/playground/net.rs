//! The browser side of a playground call: `fetch` with an `AbortController`, the answer's body read chunk by chunk
//! from its `ReadableStream` as it arrives, and a timer to wait on. Built only into the wasm bundle (`hydrate`);
//! on the server the island never calls it.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, ReadableStreamDefaultReader, RequestInit, Response};

/// What the page needs of an answer before its body: the status and the gateway's headers.
pub struct Head {
    pub status: u16,
    pub retry_after: Option<u32>,
    pub requests_left: Option<(String, String)>,
    pub tokens_left: Option<(String, String)>,
    pub month_left: Option<(String, String)>,
}

fn text(e: JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "the request failed".into())
}

/// Whether a failure is the abort the Stop button (or leaving the page) caused.
pub fn is_abort(signal: &AbortSignal) -> bool {
    signal.aborted()
}

/// POSTs `body` as JSON to `url` (same origin: the session cookie goes along), cancelled by `signal`.
pub async fn post(url: &str, body: &str, signal: &AbortSignal) -> Result<(Head, Response), String> {
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(body));
    init.set_signal(Some(signal));
    let headers = web_sys::Headers::new().map_err(text)?;
    headers
        .set("Content-Type", "application/json")
        .map_err(text)?;
    init.set_headers(&headers);
    let window = web_sys::window().ok_or("no window")?;
    let answer = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(text)?;
    let response: Response = answer.dyn_into().map_err(text)?;
    let h = response.headers();
    let get = |name: &str| h.get(name).ok().flatten();
    let pair = |left: &str, limit: &str| Some((get(left)?, get(limit)?));
    let head = Head {
        status: response.status(),
        retry_after: get("retry-after").and_then(|v| v.trim().parse().ok()),
        requests_left: pair(
            "x-ratelimit-remaining-requests",
            "x-ratelimit-limit-requests",
        ),
        tokens_left: pair("x-ratelimit-remaining-tokens", "x-ratelimit-limit-tokens"),
        month_left: pair(
            "x-ratelimit-remaining-tokens-month",
            "x-ratelimit-limit-tokens-month",
        ),
    };
    Ok((head, response))
}

/// The whole body as text (error answers, embeddings).
pub async fn body_text(response: &Response) -> Result<String, String> {
    let promise = response.text().map_err(text)?;
    JsFuture::from(promise)
        .await
        .map_err(text)?
        .as_string()
        .ok_or_else(|| "the answer was not text".into())
}

/// Reads the body as it arrives, handing each chunk to `chunk`; returns when it ends (or fails: aborted, cut).
pub async fn stream(response: &Response, mut chunk: impl FnMut(&[u8])) -> Result<(), String> {
    let body = response.body().ok_or("the answer has no body")?;
    let reader: ReadableStreamDefaultReader = body
        .get_reader()
        .dyn_into()
        .map_err(|_| "the answer cannot be read as a stream".to_string())?;
    loop {
        let step = JsFuture::from(reader.read()).await.map_err(text)?;
        let done = js_sys::Reflect::get(&step, &JsValue::from_str("done"))
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            return Ok(());
        }
        if let Ok(value) = js_sys::Reflect::get(&step, &JsValue::from_str("value")) {
            chunk(&js_sys::Uint8Array::new(&value).to_vec());
        }
    }
}

/// Milliseconds since the page loaded, for time to first token and tokens per second.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Resolves after `ms` milliseconds.
pub async fn sleep(ms: u32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(
                &resolve,
                i32::try_from(ms).unwrap_or(i32::MAX),
            );
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// The conversation kept in the browser, if any.
pub fn load(key: &str) -> Option<String> {
    web_sys::window()?
        .local_storage()
        .ok()??
        .get_item(key)
        .ok()?
}

pub fn save(key: &str, value: Option<&str>) {
    if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        let _ = match value {
            Some(v) => storage.set_item(key, v),
            None => storage.remove_item(key),
        };
    }
}
