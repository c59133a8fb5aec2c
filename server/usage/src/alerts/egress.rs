//! Where webhook deliveries may connect. Names are resolved here, and only public addresses are handed to the
//! HTTP client (`tollgate_domain::net::is_public`), so a name that resolves to an internal address is refused at
//! connection time: checking the URL when it is saved would not stop DNS that changes its answer afterwards.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use tollgate_domain::net::is_public;

/// A resolver that keeps only public addresses, and fails when none is left.
pub(super) struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| is_public(a.ip()))
                .collect();
            if public.is_empty() {
                let why = if found.is_empty() {
                    format!("{host} has no address")
                } else {
                    format!("{host} resolves only to private, loopback or link-local addresses, which this server does not call (TOLLGATE_ALERTS_WEBHOOK_PRIVATE=true allows them)")
                };
                return Err(why.into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_of_internal_addresses_are_refused() {
        let name: Name = "localhost".parse().unwrap_or_else(|_| panic!("a name"));
        let Err(e) = PublicOnly.resolve(name).await else {
            panic!("localhost resolved to a public address")
        };
        assert!(e.to_string().contains("resolves only to private"), "{e}");
    }
}
