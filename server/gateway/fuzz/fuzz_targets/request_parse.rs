//! Any body, any endpoint: parsing never panics, and what it accepts becomes valid JSON for the engine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_gateway::request::{parse, Endpoint};

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let endpoint = Endpoint::ALL[usize::from(which) % Endpoint::ALL.len()];
    if let Ok(req) = parse(endpoint, body) {
        let out = req.upstream_body("served/model", Some(16), Some(-2));
        assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
    }
});
