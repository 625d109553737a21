//! The `AlertProvider` resource: where release notifications are sent.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{metric::SecretReference, status::ResourceCondition};

/// Channel used when `channel` is not set.
pub const DEFAULT_ALERT_CHANNEL: &str = "general";
/// Bot user name used when `username` is not set.
pub const DEFAULT_ALERT_USERNAME: &str = "flagger";

/// Desired state of an AlertProvider: a chat service and how to reach it. Exactly one of `address` and
/// `secretRef` must be given.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "AlertProvider",
    plural = "alertproviders",
    singular = "alertprovider",
    namespaced,
    status = "AlertProviderStatus",
    category = "all",
    annotation("helm.sh/resource-policy", "keep"),
    derive = "PartialEq",
    doc = "AlertProvider is a chat service (Slack, Microsoft Teams, Discord, Rocket.Chat, Google Chat) that \
           Canaries reference in their analysis alerts to report the progress of releases.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [
    {"required": ["type", "address"]},
    {"required": ["type", "secretRef"]}
]))]
pub struct AlertProviderSpec {
    /// Kind of chat service.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["slack", "msteams", "discord", "rocket", "gchat"]))]
    pub type_: String,

    /// Channel to post to (default `general`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,

    /// User name of the bot (default `flagger`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,

    /// Incoming webhook URL of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,

    /// HTTP or HTTPS proxy used to reach the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,

    /// Secret (in the provider's namespace) whose `address` key holds the webhook URL; an optional `token`
    /// key is sent as a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

impl AlertProviderSpec {
    /// Channel to post to: `channel`, or `general` when unset or empty.
    pub fn channel(&self) -> &str {
        match self.channel.as_deref() {
            Some(c) if !c.is_empty() => c,
            _ => DEFAULT_ALERT_CHANNEL,
        }
    }

    /// User name of the bot: `username`, or `flagger` when unset or empty.
    pub fn username(&self) -> &str {
        match self.username.as_deref() {
            Some(u) if !u.is_empty() => u,
            _ => DEFAULT_ALERT_USERNAME,
        }
    }
}

/// Observed state of an AlertProvider. Flagger declares it but never writes it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertProviderStatus {
    /// Conditions of this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ResourceCondition>>,
}
