//! Slack (incoming webhook or `chat.postMessage` with a bot token), Flagger's `slack.go`. Discord and
//! Rocket.Chat reuse the payload.

use serde::Serialize;

use crate::http::{Endpoint, HttpOptions, parse_address};
use crate::{Alert, NotifierConfig, NotifyError, Severity};

/// Slack's message (Flagger's `SlackPayload`).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct SlackPayload {
    /// Channel to post to.
    pub channel: String,
    /// Bot user name.
    pub username: String,
    /// Always empty.
    pub icon_url: String,
    /// Always `:rocket:`.
    pub icon_emoji: String,
    /// Never set by Flagger (omitted when empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// One attachment with the message and its fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<SlackAttachment>,
}

/// A Slack attachment.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct SlackAttachment {
    /// `good`/`danger` for Slack and Discord, `#0076D7`/`#FF0000` for Rocket.Chat.
    pub color: String,
    /// `<canary>.<namespace>`.
    pub author_name: String,
    /// The message.
    pub text: String,
    /// Always `["text"]`.
    pub mrkdwn_in: Vec<String>,
    /// The alert's fields (an empty list when there are none).
    pub fields: Vec<SlackField>,
}

/// A Slack attachment field.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct SlackField {
    /// Field name.
    pub title: String,
    /// Field value.
    pub value: String,
    /// Always false.
    pub short: bool,
}

/// The Slack-format payload of `alert`; `colors` are (not error, error).
pub(crate) fn slack_format(
    channel: &str,
    username: &str,
    alert: &Alert,
    colors: (&str, &str),
) -> SlackPayload {
    let color = if alert.severity == Severity::Error {
        colors.1
    } else {
        colors.0
    };
    SlackPayload {
        channel: channel.to_owned(),
        username: username.to_owned(),
        icon_url: String::new(),
        icon_emoji: ":rocket:".to_owned(),
        text: String::new(),
        attachments: vec![SlackAttachment {
            color: color.to_owned(),
            author_name: alert.subject(),
            text: alert.message.clone(),
            mrkdwn_in: vec!["text".to_owned()],
            fields: alert
                .fields
                .iter()
                .map(|f| SlackField {
                    title: f.name.clone(),
                    value: f.value.clone(),
                    short: false,
                })
                .collect(),
        }],
    }
}

/// Checks the user name and channel that Slack-format notifiers require.
pub(crate) fn require_user_and_channel(
    service: &'static str,
    config: &NotifierConfig,
) -> Result<(), NotifyError> {
    if config.username.is_empty() {
        return Err(NotifyError::EmptyUsername { service });
    }
    if config.channel.is_empty() {
        return Err(NotifyError::EmptyChannel { service });
    }
    Ok(())
}

/// Posts to Slack. The only notifier that sends the token (`Authorization: Bearer <token>`).
#[derive(Clone, Debug)]
pub struct Slack {
    pub(crate) endpoint: Endpoint,
    channel: String,
    username: String,
}

impl Slack {
    /// Validates like Flagger's `NewSlack`: an absolute URL, a user name and a channel.
    pub fn new(config: &NotifierConfig, options: &HttpOptions) -> Result<Self, NotifyError> {
        let url = parse_address("Slack hook", &config.address)?;
        require_user_and_channel("Slack", config)?;
        Ok(Self {
            endpoint: Endpoint::new(url, config.token.as_deref(), config.proxy.as_deref(), options)?,
            channel: config.channel.clone(),
            username: config.username.clone(),
        })
    }

    /// The JSON body for `alert`: colour `danger` for errors, `good` otherwise.
    pub fn payload(&self, alert: &Alert) -> SlackPayload {
        slack_format(&self.channel, &self.username, alert, ("good", "danger"))
    }

    /// Posts `alert`.
    pub async fn post(&self, alert: &Alert) -> Result<(), NotifyError> {
        self.endpoint.post_json(&self.payload(alert)).await
    }
}
