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

/// A reverse proxy whose `X-Forwarded-For` entries are believed: one address (`10.0.0.1`) or a range in CIDR
/// notation (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(ipnet::IpNet);

impl std::str::FromStr for TrustedProxy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        s.parse::<ipnet::IpNet>()
            .or_else(|_| {
                s.parse::<IpAddr>()
                    .map(|ip| ipnet::IpNet::from(ip.to_canonical()))
            })
            .map(Self)
            .map_err(|_| format!("'{s}' is neither an IP address nor a CIDR range"))
    }
}

impl std::fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

fn trusted_by(trusted: &[TrustedProxy], ip: IpAddr) -> bool {
    trusted.iter().any(|t| t.0.contains(&ip))
}

/// The client's address. `X-Forwarded-For` is believed only as far as it was written by proxies we trust: walk
/// its entries from the right (the entry our peer added) past trusted proxies; the first untrusted address is the
/// client. Every header line counts, in order (a proxy may add a line of its own rather than extend the last
/// one), and IPv4 addresses written as IPv6 (`::ffff:10.0.0.1`) count as IPv4. With no trusted proxies the
/// header is ignored, so a client cannot forge its address in the audit log or dodge the sign-in throttle.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[TrustedProxy]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted_by(trusted, peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.iter().rev().flat_map(|line| line.rsplit(',')) {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip.to_canonical();
                if !trusted_by(trusted, client) {
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
    State(trusted): State<Arc<Vec<TrustedProxy>>>,
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
            let forwarded: Vec<&str> = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            client_ip(p, &forwarded, &trusted).to_string()
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
    use super::{client_ip, TrustedProxy};
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn proxies(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter()
            .map(|s| s.parse().unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        assert_eq!(
            client_ip(ip("203.0.113.9"), &["1.2.3.4"], &[]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let trusted = proxies(&["10.0.0.1", "10.0.0.2"]);
        // A client-forged first entry is ignored: only what our proxies appended counts.
        assert_eq!(
            client_ip(
                ip("10.0.0.1"),
                &["6.6.6.6, 198.51.100.7, 10.0.0.2"],
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &["198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &[], &trusted), ip("10.0.0.1"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), &["garbage, 10.0.0.2"], &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_ip(ip("192.0.2.1"), &["198.51.100.7"], &trusted),
            ip("192.0.2.1"),
            "an untrusted peer"
        );
    }

    #[test]
    fn every_header_line_counts_so_a_forged_first_line_cannot_win() {
        let trusted = proxies(&["10.0.0.1"]);
        // The client sent its own header line; our proxy added a second line with the address it saw.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &["6.6.6.6", "198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn ranges_are_trusted_and_mapped_ipv4_is_ipv4() {
        let trusted = proxies(&["10.0.0.0/8", "fd00::/8"]);
        assert_eq!(
            client_ip(ip("10.1.2.3"), &["198.51.100.7, 10.9.9.9"], &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("fd00::1"), &["2001:db8::7"], &trusted),
            ip("2001:db8::7")
        );
        // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d.
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), &["198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("::ffff:203.0.113.9"), &[], &trusted),
            ip("203.0.113.9")
        );
        assert!("10.0.0.0/33".parse::<TrustedProxy>().is_err());
        assert!("proxy.example".parse::<TrustedProxy>().is_err());
    }
}
