//! Wire calls only: building and sending messages over SMTP with lettre.

use std::fmt;

use lettre::message::{Mailbox, MultiPart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use offboard_core::{Error, Result, Secret};

use crate::config::{EmailConfig, SmtpSecurity};
use crate::error::MailError;

/// An outgoing message.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outgoing {
    pub(crate) to: String,
    /// More recipients of the same message.
    pub(crate) also_to: Vec<String>,
    pub(crate) subject: String,
    pub(crate) body: String,
    /// An HTML alternative to `body`.
    pub(crate) html: Option<String>,
    /// The `Message-ID` (without angle brackets), when the caller names it.
    pub(crate) message_id: Option<String>,
}

/// Where and how messages are sent: the SMTP part of [`EmailConfig`], shared by the delegate
/// and the email notifier.
#[derive(Debug, Clone)]
pub(crate) struct SmtpSettings {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) security: SmtpSecurity,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) root_ca_pem: Option<Vec<u8>>,
    pub(crate) from: String,
    pub(crate) timeout: std::time::Duration,
    pub(crate) pickup_dir: Option<std::path::PathBuf>,
}

impl From<&EmailConfig> for SmtpSettings {
    fn from(c: &EmailConfig) -> Self {
        Self {
            host: c.smtp_host.clone(),
            port: c.smtp_port,
            security: c.security,
            username: c.username.clone(),
            password: c.password.clone(),
            root_ca_pem: c.root_ca_pem.clone(),
            from: c.from.clone(),
            timeout: c.timeout,
            pickup_dir: c.pickup_dir.clone(),
        }
    }
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
    pub(crate) fn new(config: &SmtpSettings) -> Result<Self> {
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
            let mut b = TlsParameters::builder(config.host.clone());
            if let Some(pem) = &config.root_ca_pem {
                let cert = Certificate::from_pem(pem)
                    .map_err(|e| Error::config("root_ca", format!("not a PEM certificate: {e}")))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| Error::config("root_ca", format!("TLS set-up failed: {e}")))
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
                .port(config.port)
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

    /// Sends one message: plain text, or plain text and HTML alternatives.
    pub(crate) async fn send(&self, msg: &Outgoing) -> Result<()> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(msg.subject.clone());
        for rcpt in std::iter::once(&msg.to).chain(&msg.also_to) {
            let to: Mailbox = rcpt.parse().map_err(|_| {
                Error::invalid_input("recipient is not an email address").with_context("to", rcpt)
            })?;
            builder = builder.to(to);
        }
        if let Some(id) = &msg.message_id {
            builder = builder.message_id(Some(format!("<{id}>")));
        }
        let built = match &msg.html {
            None => builder
                .header(ContentType::TEXT_PLAIN)
                .body(msg.body.clone()),
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                msg.body.clone(),
                html.clone(),
            )),
        };
        let email =
            built.map_err(|e| Error::invalid_input(format!("building the message: {e}")))?;
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
