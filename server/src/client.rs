//! Who is on the other end of a request: the client's address (seen through trusted reverse proxies) and browser,
//! worked out once per request by `remember_client` and read by everything that records it (audit log,
//! sessions, sign-in throttling).

use axum::{
    extract::{ConnectInfo, Request, State},
    http::header,
    middleware::Next,
    response::Response,
};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tollgate_identity::session::ClientInfo;

/// The client's address. `X-Forwarded-For` is believed only as far as it was written by proxies we trust: walk
/// it from the right (the entry our peer added) past trusted proxies; the first untrusted address is the client.
/// With no trusted proxies the header is ignored, so a client cannot forge its address in the audit log.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.unwrap_or_default().rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(&ip) {
                    break;
                }
            }
            // A malformed entry ends what we can believe; the last good address stands.
            Err(_) => break,
        }
    }
    client
}

/// Middleware: puts the request's `ClientInfo` into its extensions.
pub async fn remember_client(
    State(trusted): State<Arc<Vec<IpAddr>>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let headers = req.headers();
    let info = ClientInfo {
        ip: peer.map(|p| {
            let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
            client_ip(p, forwarded, &trusted).to_string()
        }),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(200).collect()),
    };
    req.extensions_mut().insert(info);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::client_ip;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &[]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        // A client-forged first entry is ignored: only what our proxies appended counts.
        assert_eq!(
            client_ip(
                ip("10.0.0.1"),
                Some("6.6.6.6, 198.51.100.7, 10.0.0.2"),
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), None, &trusted), ip("10.0.0.1"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("garbage, 10.0.0.2"), &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_ip(ip("192.0.2.1"), Some("198.51.100.7"), &trusted),
            ip("192.0.2.1"),
            "an untrusted peer"
        );
    }
}
