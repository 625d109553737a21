//! Kubernetes Events on Canaries, with their copies to event webhooks. Being written.

use flagger_api::Canary;
use flagger_webhooks::client::WebhookClient;
use kube::Client;

use crate::config::ControllerConfig;
use crate::gate::WriteGate;

/// Records Flagger's events.
#[derive(Clone)]
pub struct EventRecorder {
    #[allow(dead_code)]
    client: Client,
    #[allow(dead_code)]
    webhooks: WebhookClient,
}

impl EventRecorder {
    /// A recorder reporting as `config.component`.
    pub fn new(client: Client, _config: &ControllerConfig, webhooks: WebhookClient) -> Self {
        Self { client, webhooks }
    }

    /// Records `event` on `canary`: a log line, a Kubernetes Event and a POST to the event webhooks.
    pub async fn record(&self, canary: &Canary, event: &flagger_core::machine::Event, _gate: &WriteGate) {
        tracing::info!(canary = %canary.metadata.name.as_deref().unwrap_or_default(), "{}", event.message);
    }
}
