//! Rocket.Chat incoming webhooks (Flagger's `rocket.go`).

use crate::http::{Endpoint, HttpOptions, parse_address};
use crate::slack::{SlackPayload, require_user_and_channel, slack_format};
use crate::{Alert, NotifierConfig, NotifyError};

/// Posts Slack-format messages to Rocket.Chat. The token is not sent.
#[derive(Clone, Debug)]
pub struct Rocket {
    pub(crate) endpoint: Endpoint,
    channel: String,
    username: String,
}

impl Rocket {
    /// Validates like Flagger's `NewRocket`: an absolute URL, a user name and a channel.
    pub fn new(config: &NotifierConfig, options: &HttpOptions) -> Result<Self, NotifyError> {
        let url = parse_address("Rocket hook", &config.address)?;
        require_user_and_channel("Rocket", config)?;
        Ok(Self {
            endpoint: Endpoint::new(url, None, config.proxy.as_deref(), options)?,
            channel: config.channel.clone(),
            username: config.username.clone(),
        })
    }

    /// The JSON body for `alert`: Slack's, colour `#FF0000` for errors, `#0076D7` otherwise.
    pub fn payload(&self, alert: &Alert) -> SlackPayload {
        slack_format(&self.channel, &self.username, alert, ("#0076D7", "#FF0000"))
    }

    /// Posts `alert`.
    pub async fn post(&self, alert: &Alert) -> Result<(), NotifyError> {
        self.endpoint.post_json(&self.payload(alert)).await
    }
}
