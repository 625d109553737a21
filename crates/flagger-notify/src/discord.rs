//! Discord through its Slack-compatible webhook (Flagger's `discord.go`).

use url::Url;

use crate::http::{Endpoint, HttpOptions, parse_address};
use crate::slack::{SlackPayload, require_user_and_channel, slack_format};
use crate::{Alert, NotifierConfig, NotifyError};

/// Posts Slack-format messages to Discord's `/slack` webhook endpoint. The token is not sent.
#[derive(Clone, Debug)]
pub struct Discord {
    pub(crate) endpoint: Endpoint,
    channel: String,
    username: String,
}

impl Discord {
    /// Validates like Flagger's `NewDiscord` and appends `/slack` to the path unless the address already
    /// ends with `/slack`.
    pub fn new(config: &NotifierConfig, options: &HttpOptions) -> Result<Self, NotifyError> {
        let url = slack_compatible_url(parse_address("Discord hook", &config.address)?, &config.address);
        require_user_and_channel("Discord", config)?;
        Ok(Self {
            endpoint: Endpoint::new(url, None, config.proxy.as_deref(), options)?,
            channel: config.channel.clone(),
            username: config.username.clone(),
        })
    }

    /// The JSON body for `alert`: Slack's, colour `danger` for errors, `good` otherwise.
    pub fn payload(&self, alert: &Alert) -> SlackPayload {
        slack_format(&self.channel, &self.username, alert, ("good", "danger"))
    }

    /// Posts `alert`.
    pub async fn post(&self, alert: &Alert) -> Result<(), NotifyError> {
        self.endpoint.post_json(&self.payload(alert)).await
    }

    /// The URL posted to.
    pub fn url(&self) -> &Url {
        self.endpoint.url()
    }
}

/// Go: `if !strings.HasSuffix(hookURL, "/slack") { u.Path = path.Join(u.Path, "slack") }`. The suffix is
/// checked on the whole address (query included); the joined path is cleaned like Go's `path.Join`.
fn slack_compatible_url(mut url: Url, address: &str) -> Url {
    if address.ends_with("/slack") {
        return url;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in url.path().split('/').chain(std::iter::once("slack")) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let path = format!("/{}", segments.join("/"));
    url.set_path(&path);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(address: &str) -> String {
        slack_compatible_url(Url::parse(address).unwrap(), address).to_string()
    }

    #[test]
    fn appends_slack_like_go_path_join() {
        assert_eq!(
            joined("https://discord.com/api/webhooks/1/abc"),
            "https://discord.com/api/webhooks/1/abc/slack"
        );
        assert_eq!(
            joined("https://discord.com/api/webhooks/1/abc/"),
            "https://discord.com/api/webhooks/1/abc/slack"
        );
        assert_eq!(
            joined("https://discord.com/api/webhooks/1/abc/slack"),
            "https://discord.com/api/webhooks/1/abc/slack"
        );
        assert_eq!(joined("http://127.0.0.1:9"), "http://127.0.0.1:9/slack");
        assert_eq!(
            joined("http://127.0.0.1:9/a//b/?wait=true"),
            "http://127.0.0.1:9/a/b/slack?wait=true"
        );
    }
}
