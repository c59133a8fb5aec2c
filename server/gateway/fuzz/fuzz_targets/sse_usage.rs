//! Any engine stream, cut anywhere: the scanner never panics, never adds bytes, and reads the same usage whether
//! the stream arrives whole or in two pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_gateway::sse::{usage_of_body, Output, SseScanner};

fn run(flags: u8, pieces: &[&[u8]]) -> (Vec<u8>, Option<tollgate_gateway::sse::Usage>) {
    let mut s = SseScanner::new(flags & 1 == 1, flags & 2 == 2)
        .renaming(tollgate_gateway::model_name::ModelRename::new("served/m", "m"));
    let mut out = Vec::new();
    for p in pieces {
        match s.push(p) {
            Output::Same => out.extend_from_slice(p),
            Output::Rewritten(v) => out.extend_from_slice(&v),
        }
    }
    out.extend_from_slice(&s.finish());
    (out, s.usage())
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, stream)) = data.split_first() else { return };
    let cut = if stream.is_empty() { 0 } else { usize::from(flags) * 7 % stream.len() };
    let (whole, u1) = run(flags, &[stream]);
    let (split, u2) = run(flags, &[&stream[..cut], &stream[cut..]]);
    assert!(whole.len() <= stream.len());
    assert_eq!(whole, split);
    assert_eq!(u1, u2);
    let _ = usage_of_body(stream);
});
