//! The global notifier of `cmd/flagger initNotifier`: Slack from `-slack-*`, or Microsoft Teams when
//! `-msteams-url` is set, used for canaries without `analysis.alerts`.

use flagger_core::provider::AlertProviderType;

use crate::NotifierConfig;

/// The `-slack-*` and `-msteams-*` flags.
#[derive(Clone, PartialEq, Eq)]
pub struct GlobalNotifierSettings {
    /// `-slack-url` (env `SLACK_URL` wins when not empty).
    pub slack_url: String,
    /// `-slack-token` (env `SLACK_TOKEN` wins), sent as a bearer token.
    pub slack_token: String,
    /// `-slack-proxy-url` (env `SLACK_PROXY_URL` wins).
    pub slack_proxy_url: String,
    /// `-slack-user` (default `flagger`).
    pub slack_user: String,
    /// `-slack-channel` (default empty, which Slack refuses).
    pub slack_channel: String,
    /// `-msteams-url` (env `MSTEAMS_URL` wins); when set, Teams replaces Slack.
    pub msteams_url: String,
    /// `-msteams-proxy-url` (env `MSTEAMS_PROXY_URL` wins).
    pub msteams_proxy_url: String,
}

impl Default for GlobalNotifierSettings {
    fn default() -> Self {
        Self {
            slack_url: String::new(),
            slack_token: String::new(),
            slack_proxy_url: String::new(),
            slack_user: "flagger".to_owned(),
            slack_channel: String::new(),
            msteams_url: String::new(),
            msteams_proxy_url: String::new(),
        }
    }
}

impl std::fmt::Debug for GlobalNotifierSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &str| if s.is_empty() { "" } else { "<set>" };
        f.debug_struct("GlobalNotifierSettings")
            .field("slack_url", &set(&self.slack_url))
            .field("slack_token", &set(&self.slack_token))
            .field("slack_proxy_url", &set(&self.slack_proxy_url))
            .field("slack_user", &self.slack_user)
            .field("slack_channel", &self.slack_channel)
            .field("msteams_url", &set(&self.msteams_url))
            .field("msteams_proxy_url", &set(&self.msteams_proxy_url))
            .finish()
    }
}

/// The environment variables that override the flags when set and not empty.
pub const ENV_OVERRIDES: [&str; 5] = [
    "SLACK_URL",
    "SLACK_TOKEN",
    "SLACK_PROXY_URL",
    "MSTEAMS_URL",
    "MSTEAMS_PROXY_URL",
];

impl GlobalNotifierSettings {
    /// Applies the environment overrides (Flagger's `fromEnv`: a non-empty variable wins over the flag).
    /// `lookup` reads a variable, e.g. `|k| std::env::var(k).ok()`.
    pub fn with_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let env = |key: &str, flag: &mut String| {
            if let Some(value) = lookup(key).filter(|v| !v.is_empty()) {
                *flag = value;
            }
        };
        env("SLACK_URL", &mut self.slack_url);
        env("SLACK_TOKEN", &mut self.slack_token);
        env("SLACK_PROXY_URL", &mut self.slack_proxy_url);
        env("MSTEAMS_URL", &mut self.msteams_url);
        env("MSTEAMS_PROXY_URL", &mut self.msteams_proxy_url);
        self
    }

    /// The global notifier's settings: Teams when its URL is set, else Slack; `None` when the chosen
    /// URL is empty (no global notifier). Build it with [`crate::AnyNotifier::new`]; as in Flagger, a
    /// Slack notifier without `-slack-channel` fails to build (log it and run without).
    pub fn config(&self) -> Option<NotifierConfig> {
        let (provider, address, proxy) = if self.msteams_url.is_empty() {
            (AlertProviderType::Slack, &self.slack_url, &self.slack_proxy_url)
        } else {
            (
                AlertProviderType::Msteams,
                &self.msteams_url,
                &self.msteams_proxy_url,
            )
        };
        if address.is_empty() {
            return None;
        }
        Some(NotifierConfig {
            provider,
            address: address.clone(),
            token: Some(self.slack_token.clone()).filter(|t| !t.is_empty()),
            proxy: Some(proxy.clone()).filter(|p| !p.is_empty()),
            username: self.slack_user.clone(),
            channel: self.slack_channel.clone(),
        })
    }
}
