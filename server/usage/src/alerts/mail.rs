//! Email by SMTP (`lettre`), as `TOLLGATE_SMTP_URL` names the server:
//! - `smtp://host[:port]`: plain SMTP (port 25), for a relay on the local network or the same host;
//! - `smtp://user:password@host[:port]?tls=required`: STARTTLS (port 587), then login;
//! - `smtps://user:password@host[:port]`: TLS from the first byte (port 465), then login.
//!
//! User and password are percent-encoded in the URL. TLS checks the server's certificate against the bundled web
//! roots (webpki-roots), or against the CA in `TOLLGATE_SMTP_CA` (a PEM file) for a server with a private CA.

use lettre::{
    message::{header::ContentType, Mailbox},
    transport::smtp::client::{Certificate, Tls, TlsParameters},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use std::time::Duration;

/// An SMTP server and the sender's address.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// How a URL asks for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    None,
    StartTls,
    Opportunistic,
    Wrapper,
}

/// The URL's TLS mode, or why it is refused, in words.
fn tls_mode(url: &str) -> Result<TlsMode, String> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| format!("TOLLGATE_SMTP_URL is not a URL ({e}): smtp://host:port, smtp://user:password@host:587?tls=required or smtps://user:password@host:465"))?;
    let tls = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.to_string());
    match (parsed.scheme(), tls.as_deref()) {
        ("smtp", None) => Ok(TlsMode::None),
        ("smtp", Some("required")) => Ok(TlsMode::StartTls),
        ("smtp", Some("opportunistic")) => Ok(TlsMode::Opportunistic),
        ("smtps", None) => Ok(TlsMode::Wrapper),
        (scheme, tls) => Err(format!(
            "TOLLGATE_SMTP_URL: scheme {scheme:?} with tls={tls:?} is not one of smtp://, smtp://...?tls=required, smtp://...?tls=opportunistic or smtps://"
        )),
    }
}

impl Mailer {
    /// From the server URL (see the module), the PEM of a CA to trust instead of the web roots (None: the web
    /// roots), and a sender address; an error in words otherwise.
    pub fn from_url(url: &str, ca_pem: Option<&[u8]>, from: &str) -> Result<Self, String> {
        let mode = tls_mode(url)?;
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("TOLLGATE_SMTP_FROM is not an email address ({from}): {e}"))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.trim())
            .map_err(|e| format!("TOLLGATE_SMTP_URL: {e}"))?
            .timeout(Some(Duration::from_secs(10)));
        if let Some(pem) = ca_pem {
            if mode == TlsMode::None {
                return Err("TOLLGATE_SMTP_CA is set but TOLLGATE_SMTP_URL asks for no TLS".into());
            }
            let host = reqwest::Url::parse(url.trim())
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default();
            // An input without a certificate would parse as none at all, and trust nothing.
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err("TOLLGATE_SMTP_CA holds no PEM certificate".into());
            }
            let ca = Certificate::from_pem(pem)
                .map_err(|e| format!("TOLLGATE_SMTP_CA is not a PEM certificate: {e}"))?;
            let params = TlsParameters::builder(host)
                .add_root_certificate(ca)
                .build_rustls()
                .map_err(|e| format!("TOLLGATE_SMTP_CA: {e}"))?;
            builder = builder.tls(match mode {
                TlsMode::Wrapper => Tls::Wrapper(params),
                TlsMode::Opportunistic => Tls::Opportunistic(params),
                TlsMode::StartTls | TlsMode::None => Tls::Required(params),
            });
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_name_plain_starttls_or_tls_servers() {
        assert_eq!(tls_mode("smtp://127.0.0.1:2525"), Ok(TlsMode::None));
        assert_eq!(tls_mode("smtp://mail.internal"), Ok(TlsMode::None));
        assert_eq!(
            tls_mode("smtp://u:p%40ss@mail:587?tls=required"),
            Ok(TlsMode::StartTls)
        );
        assert_eq!(
            tls_mode("smtp://mail?tls=opportunistic"),
            Ok(TlsMode::Opportunistic)
        );
        assert_eq!(tls_mode("smtps://u:p@mail"), Ok(TlsMode::Wrapper));
        for bad in [
            "http://mail:25",
            "smtp://mail?tls=sometimes",
            "smtps://mail?tls=required",
            "not a url",
        ] {
            assert!(tls_mode(bad).is_err(), "{bad}");
        }
        let sender = "Tollgate <alerts@example.com>";
        assert!(Mailer::from_url("smtp://127.0.0.1:25", None, "not an address").is_err());
        assert!(Mailer::from_url("smtp://127.0.0.1:25", None, sender).is_ok());
        assert!(Mailer::from_url("smtps://u:p@mail.example.com", None, sender).is_ok());
        assert!(Mailer::from_url("smtp://mail:notaport", None, sender).is_err());
        assert!(Mailer::from_url("smtp://", None, sender).is_err());
        assert!(
            Mailer::from_url("smtp://127.0.0.1:25", Some(b"x"), sender).is_err(),
            "a CA for a server without TLS"
        );
        assert!(Mailer::from_url("smtps://mail.example.com", Some(b"not a pem"), sender).is_err());
    }
}
