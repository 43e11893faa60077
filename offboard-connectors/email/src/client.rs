//! Wire calls only: building and sending messages over SMTP with lettre.

use std::fmt;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use offboard_core::{Error, Result};

use crate::config::{EmailConfig, SmtpSecurity};
use crate::error::MailError;

/// An outgoing message.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) to: String,
    pub(crate) subject: String,
    pub(crate) body: String,
}

/// Where messages go.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in a pickup directory.
    File(AsyncFileTransport<Tokio1Executor>),
}

/// The SMTP client (or the pickup directory's writer).
pub(crate) struct SmtpClient {
    transport: Transport,
    from: Mailbox,
}

impl fmt::Debug for SmtpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpClient")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpClient {
    /// A client for the configured relay. TLS is rustls with the aws-lc-rs provider, which
    /// lettre passes explicitly (no process-wide default is read).
    pub(crate) fn new(config: &EmailConfig) -> Result<Self> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|_| Error::config("from", "not an email address"))?;
        if let Some(dir) = &config.pickup_dir {
            if !dir.is_dir() {
                return Err(Error::config(
                    "pickup_dir",
                    format!("not a directory: {}", dir.display()),
                ));
            }
            return Ok(Self {
                transport: Transport::File(AsyncFileTransport::new(dir)),
                from,
            });
        }
        let tls = || -> Result<TlsParameters> {
            let mut b = TlsParameters::builder(config.smtp_host.clone());
            if let Some(pem) = &config.root_ca_pem {
                let cert = Certificate::from_pem(pem)
                    .map_err(|e| Error::config("root_ca", format!("not a PEM certificate: {e}")))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| Error::config("root_ca", format!("TLS set-up failed: {e}")))
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.smtp_host.as_str())
                .port(config.smtp_port)
                .timeout(Some(config.timeout));
        builder = match config.security {
            SmtpSecurity::Plain => builder.tls(Tls::None),
            SmtpSecurity::StartTls => builder.tls(Tls::Required(tls()?)),
            SmtpSecurity::ImplicitTls => builder.tls(Tls::Wrapper(tls()?)),
        };
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        Ok(Self {
            transport: Transport::Smtp(builder.build()),
            from,
        })
    }

    /// Sends one plain-text message.
    pub(crate) async fn send(&self, msg: &Outgoing) -> Result<()> {
        let to: Mailbox = msg.to.parse().map_err(|_| {
            Error::invalid_input("recipient is not an email address").with_context("to", &msg.to)
        })?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(msg.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(msg.body.clone())
            .map_err(|e| Error::invalid_input(format!("building the message: {e}")))?;
        match &self.transport {
            Transport::Smtp(t) => {
                t.send(email)
                    .await
                    .map_err(|e| Error::from(MailError::Smtp(e)))?;
            }
            Transport::File(t) => {
                t.send(email).await.map_err(|e| {
                    Error::storage("writing the message to the pickup directory failed")
                        .retryable()
                        .with_source(e)
                })?;
            }
        }
        Ok(())
    }
}
