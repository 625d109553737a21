//! What every notifier needs ([`NotifierConfig`]), the [`Notifier`] trait and the enum dispatch over
//! the five provider types ([`AnyNotifier`], Flagger's `notifier.Factory`).

use std::future::Future;

use flagger_core::provider::AlertProviderType;

use crate::http::{HttpOptions, redact};
use crate::{Alert, Discord, GChat, MsTeams, Rocket, Slack};

/// Why a notifier cannot be built or a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The webhook address is empty (Flagger silently sends nothing).
    #[error("empty webhook address")]
    EmptyAddress,
    /// The webhook address is not an absolute URL (only its scheme and host are kept).
    #[error("invalid {service} URL {url}")]
    InvalidUrl {
        /// e.g. `Slack hook`.
        service: &'static str,
        /// The redacted address.
        url: String,
    },
    /// A Slack-format notifier without a user name.
    #[error("empty {service} username")]
    EmptyUsername {
        /// e.g. `Slack`.
        service: &'static str,
    },
    /// A Slack-format notifier without a channel.
    #[error("empty {service} channel")]
    EmptyChannel {
        /// e.g. `Slack`.
        service: &'static str,
    },
    /// The proxy is not a usable URL.
    #[error("unable to parse proxy URL '{proxy}', error: {source}")]
    InvalidProxy {
        /// The proxy as given.
        proxy: String,
        /// The parse error.
        source: reqwest::Error,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client failed: {0}")]
    Client(#[source] reqwest::Error),
    /// The payload could not be encoded.
    #[error("marshalling notification payload failed: {0}")]
    Encode(#[source] serde_json::Error),
    /// Connection, timeout or protocol failure.
    #[error("sending notification failed to send: {0}")]
    Transport(#[source] reqwest::Error),
    /// The service answered outside 2xx.
    #[error("sending notification bad response {status}: {body}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// Start of the response body.
        body: String,
    },
}

impl NotifyError {
    /// Whether trying again may help: transport failures (timeouts included), 408, 429 and 5xx.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Everything a notifier is built from: an AlertProvider after its Secret was read, or the global
/// `-slack-*`/`-msteams-*` settings.
#[derive(Clone, PartialEq, Eq)]
pub struct NotifierConfig {
    /// The provider type.
    pub provider: AlertProviderType,
    /// Webhook URL (from `spec.address` or the Secret's `address`).
    pub address: String,
    /// Bearer token (the Secret's `token`); only Slack sends it.
    pub token: Option<String>,
    /// HTTP(S) proxy URL.
    pub proxy: Option<String>,
    /// Bot user name (Slack, Discord, Rocket.Chat).
    pub username: String,
    /// Channel (Slack, Discord, Rocket.Chat).
    pub channel: String,
}

impl std::fmt::Debug for NotifierConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifierConfig")
            .field("provider", &self.provider)
            .field("address", &redact(&self.address))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("proxy", &self.proxy.as_deref().map(redact))
            .field("username", &self.username)
            .field("channel", &self.channel)
            .finish()
    }
}

/// Something that posts alerts to people.
pub trait Notifier {
    /// The provider type (the label of the delivery counters).
    fn provider(&self) -> AlertProviderType;

    /// Posts one alert; Ok when the service answered 2xx.
    fn post(&self, alert: &Alert) -> impl Future<Output = Result<(), NotifyError>> + Send;
}

/// A notifier of any of the five provider types.
#[derive(Clone, Debug)]
pub enum AnyNotifier {
    /// Slack.
    Slack(Slack),
    /// Microsoft Teams.
    MsTeams(MsTeams),
    /// Discord.
    Discord(Discord),
    /// Rocket.Chat.
    Rocket(Rocket),
    /// Google Chat.
    GChat(GChat),
}

impl AnyNotifier {
    /// Builds the notifier of `config.provider` with Flagger's 5s timeout.
    pub fn new(config: &NotifierConfig) -> Result<Self, NotifyError> {
        Self::with_options(config, &HttpOptions::default())
    }

    /// Builds the notifier of `config.provider`, validating like Flagger's constructors.
    pub fn with_options(config: &NotifierConfig, options: &HttpOptions) -> Result<Self, NotifyError> {
        if config.address.is_empty() {
            return Err(NotifyError::EmptyAddress);
        }
        Ok(match config.provider {
            AlertProviderType::Slack => Self::Slack(Slack::new(config, options)?),
            AlertProviderType::Msteams => Self::MsTeams(MsTeams::new(config, options)?),
            AlertProviderType::Discord => Self::Discord(Discord::new(config, options)?),
            AlertProviderType::Rocket => Self::Rocket(Rocket::new(config, options)?),
            AlertProviderType::Gchat => Self::GChat(GChat::new(config, options)?),
        })
    }

    fn endpoint(&self) -> &crate::http::Endpoint {
        match self {
            Self::Slack(n) => &n.endpoint,
            Self::MsTeams(n) => &n.endpoint,
            Self::Discord(n) => &n.endpoint,
            Self::Rocket(n) => &n.endpoint,
            Self::GChat(n) => &n.endpoint,
        }
    }

    /// The JSON body this notifier posts for `alert`.
    pub fn payload(&self, alert: &Alert) -> serde_json::Value {
        let value = match self {
            Self::Slack(n) => serde_json::to_value(n.payload(alert)),
            Self::MsTeams(n) => serde_json::to_value(n.payload(alert)),
            Self::Discord(n) => serde_json::to_value(n.payload(alert)),
            Self::Rocket(n) => serde_json::to_value(n.payload(alert)),
            Self::GChat(n) => serde_json::to_value(n.payload(alert)),
        };
        // Plain structs of strings, lists and booleans always serialize.
        value.unwrap_or(serde_json::Value::Null)
    }

    /// The destination, for ordering and logs: provider type, URL and proxy. It contains the secret
    /// webhook URL; log [`AnyNotifier::redacted_destination`] instead.
    pub fn destination(&self) -> String {
        let endpoint = self.endpoint();
        format!(
            "{} {} {}",
            self.provider(),
            endpoint.url(),
            endpoint.proxy().unwrap_or_default()
        )
    }

    /// Scheme and host of the URL posted to, safe to log.
    pub fn redacted_destination(&self) -> String {
        redact(self.endpoint().url().as_str())
    }
}

impl Notifier for AnyNotifier {
    fn provider(&self) -> AlertProviderType {
        match self {
            Self::Slack(_) => AlertProviderType::Slack,
            Self::MsTeams(_) => AlertProviderType::Msteams,
            Self::Discord(_) => AlertProviderType::Discord,
            Self::Rocket(_) => AlertProviderType::Rocket,
            Self::GChat(_) => AlertProviderType::Gchat,
        }
    }

    async fn post(&self, alert: &Alert) -> Result<(), NotifyError> {
        match self {
            Self::Slack(n) => n.post(alert).await,
            Self::MsTeams(n) => n.post(alert).await,
            Self::Discord(n) => n.post(alert).await,
            Self::Rocket(n) => n.post(alert).await,
            Self::GChat(n) => n.post(alert).await,
        }
    }
}
