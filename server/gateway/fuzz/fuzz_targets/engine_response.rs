//! Any bytes an engine might send back, cut anywhere: the response decoder never panics, never yields more body
//! than it was given (nor more than a declared length), and decodes the same body whether the bytes arrive whole
//! or in two pieces.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tollgate_gateway::engine_conn::codec::{parse_head, ProtocolError};

/// The body decoded from `pieces`, arriving one after another; Err on a protocol error.
fn decode(pieces: &[&[u8]]) -> Result<Option<(Vec<u8>, bool)>, ProtocolError> {
    let mut buf = BytesMut::new();
    let mut head = None;
    // The body's length as the head declared it (None: chunked or until close).
    let mut declared = None;
    let mut body = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        if head.is_none() {
            head = parse_head(&mut buf)?;
            declared = head.as_ref().and_then(|h| h.body.remaining());
        }
        if let Some(h) = &mut head {
            while let Some(data) = h.body.decode(&mut buf)? {
                assert!(!data.is_empty());
                body.extend_from_slice(&data);
            }
            if let Some(n) = declared {
                assert!(body.len() as u64 <= n);
            }
        }
    }
    Ok(head.map(|mut h| {
        let ended = h.body.is_done() || h.body.eof().is_ok();
        (body, ended)
    }))
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, wire)) = data.split_first() else { return };
    let cut = if wire.is_empty() { 0 } else { usize::from(cut) * 13 % wire.len() };
    let whole = decode(&[wire]);
    let split = decode(&[&wire[..cut], &wire[cut..]]);
    if let Ok(Some((body, _))) = &whole {
        assert!(body.len() <= wire.len());
    }
    assert_eq!(whole, split);
});
