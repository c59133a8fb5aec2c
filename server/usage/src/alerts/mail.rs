//! Email by SMTP (`lettre`): a plain `smtp://host[:port]` relay, as `TOLLGATE_SMTP_URL` names it. No TLS in this
//! build: the relay is expected on the local network or the same host (a mail relay that forwards with TLS).

use lettre::{
    message::{header::ContentType, Mailbox},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use std::time::Duration;

/// An SMTP relay and the sender's address.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// From `smtp://host[:port]` (port 25 by default) and a sender address; an error in words otherwise.
    pub fn from_url(url: &str, from: &str) -> Result<Self, String> {
        let (host, port) = parse_smtp_url(url)?;
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("TOLLGATE_SMTP_FROM is not an email address ({from}): {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(Duration::from_secs(10)))
            .build();
        Ok(Self { transport, from })
    }

    /// Sends one message to `to` (comma-separated addresses); the error in words.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), String> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        let mut any = false;
        for address in to.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let mailbox: Mailbox = address
                .parse()
                .map_err(|e| format!("not an email address ({address}): {e}"))?;
            builder = builder.to(mailbox);
            any = true;
        }
        if !any {
            return Err("no recipients".into());
        }
        let message = builder
            .body(body)
            .map_err(|e| format!("could not build the email: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {e}"))
    }
}

/// `smtp://host[:port]` as (host, port).
fn parse_smtp_url(url: &str) -> Result<(String, u16), String> {
    let rest = url.trim().strip_prefix("smtp://").ok_or_else(|| {
        format!("TOLLGATE_SMTP_URL must look like smtp://host:port (got {url:?}); TLS relays are not supported")
    })?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '@', '?']) {
        return Err(format!(
            "TOLLGATE_SMTP_URL must be smtp://host[:port], without user, path or query (got {url:?})"
        ));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => port
            .parse()
            .map(|p| (host.trim_matches(['[', ']']).to_string(), p))
            .map_err(|_| format!("TOLLGATE_SMTP_URL has a bad port: {port:?}")),
        Some(_) => Err(format!("TOLLGATE_SMTP_URL has no host (got {url:?})")),
        None => Ok((authority.to_string(), 25)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_are_plain_relays() {
        assert_eq!(
            parse_smtp_url("smtp://127.0.0.1:2525"),
            Ok(("127.0.0.1".into(), 2525))
        );
        assert_eq!(
            parse_smtp_url("smtp://mail.internal"),
            Ok(("mail.internal".into(), 25))
        );
        assert!(parse_smtp_url("smtps://mail:465").is_err());
        assert!(parse_smtp_url("smtp://user:pw@mail:25").is_err());
        assert!(parse_smtp_url("smtp://mail:notaport").is_err());
        assert!(parse_smtp_url("smtp://").is_err());
        assert!(Mailer::from_url("smtp://127.0.0.1:25", "not an address").is_err());
        assert!(Mailer::from_url("smtp://127.0.0.1:25", "Tollgate <alerts@example.com>").is_ok());
    }
}
