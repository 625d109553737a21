//! Alerts to the canary's AlertProviders or the global notifier (Flagger's `events.go alert()`).
//!
//! An alert of the state machine becomes a [`flagger_notify::Alert`]: the message, its severity, the
//! `Cluster` field when `-cluster-name` is set and, for the alerts that carry them, the canary's metadata
//! fields. Who receives it is [`flagger_notify::routing::recipients`]:
//!
//! - a canary without `analysis.alerts` → the global notifier (`-slack-*`/`-msteams-*`), if any, whatever
//!   the severity;
//! - otherwise each entry whose severity accepts the message, through its AlertProvider — read from the
//!   watch cache, in `providerRef.namespace` or the canary's — and, when the provider has a `secretRef`,
//!   its Secret (a GET: alerts are rare). A missing provider, an unreadable Secret or an unusable provider
//!   is logged with Flagger's text and skipped; the other entries still get the alert.
//!
//! Delivery is the [`AlertSender`]'s: [`Alerts::send`] only enqueues, a background task posts (in order
//! per destination, with bounded retries). Failures — those found here and those of the deliveries, which
//! the sender counts — go to `flagger_rs_alert_failures_total{provider}`; the sender's counts are copied
//! into it every few seconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use flagger_api::{AlertSeverity, Canary, CanaryAlert};
use flagger_core::provider::AlertProviderType;
use flagger_notify::routing::{self, ProviderError, Recipients};
use flagger_notify::{AlertCounters, AlertSender, AnyNotifier, Field, NotifyError, Severity};
use flagger_telemetry::OperatorMetrics;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::cache::Caches;
use crate::config::ControllerConfig;

/// How often the sender's delivery failures are copied into the operator metrics.
const METRICS_SYNC_INTERVAL: Duration = Duration::from_secs(5);

/// Why an alert entry of a canary cannot be delivered. The messages are Flagger's log texts.
#[derive(Debug, thiserror::Error)]
pub enum AlertProviderError {
    /// The AlertProvider is not in the cache.
    #[error("alert provider {name}.{namespace} error: alertprovider.flagger.app \"{name}\" not found")]
    NotFound {
        /// Name of the AlertProvider.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// The Secret of `secretRef` cannot be read.
    #[error("alert provider {name}.{namespace} secretRef error: {}", api_message(.source))]
    Secret {
        /// Name of the AlertProvider.
        name: String,
        /// Its namespace (also the Secret's).
        namespace: String,
        /// The provider type, when valid.
        provider: Option<AlertProviderType>,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The provider's settings are unusable (unknown type, Secret without `address`, ...).
    #[error("alert provider {name}.{namespace} {}", provider_detail(.source))]
    Provider {
        /// Name of the AlertProvider.
        name: String,
        /// Its namespace.
        namespace: String,
        /// The provider type, when valid.
        provider: Option<AlertProviderType>,
        /// What is wrong.
        #[source]
        source: ProviderError,
    },
    /// The notifier cannot be built from the settings (invalid URL, no channel, ...).
    #[error("alert provider {name}.{namespace} error: {source}")]
    Notifier {
        /// Name of the AlertProvider.
        name: String,
        /// Its namespace.
        namespace: String,
        /// The provider type.
        provider: AlertProviderType,
        /// What is wrong.
        #[source]
        source: NotifyError,
    },
}

impl AlertProviderError {
    /// The provider type, when known (the label of the failure metric).
    pub fn provider(&self) -> Option<AlertProviderType> {
        match self {
            Self::NotFound { .. } => None,
            Self::Secret { provider, .. } | Self::Provider { provider, .. } => *provider,
            Self::Notifier { provider, .. } => Some(*provider),
        }
    }
}

/// The message of an API error as Go prints it (`secrets "x" not found`).
fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// Flagger's wording per problem: `error: provider x not supported`, `secret does not contain an
/// address`, `secretRef error: ...`.
fn provider_detail(error: &ProviderError) -> String {
    match error {
        ProviderError::UnknownType(_) => format!("error: {error}"),
        ProviderError::SecretWithoutAddress => error.to_string(),
        ProviderError::SecretNotRead(_) | ProviderError::SecretNotUtf8(_) => {
            format!("secretRef error: {error}")
        }
    }
}

/// The severity of a machine alert (an unset severity is info).
fn severity(severity: AlertSeverity) -> Severity {
    match severity {
        AlertSeverity::Unset | AlertSeverity::Info => Severity::Info,
        AlertSeverity::Warn => Severity::Warn,
        AlertSeverity::Error => Severity::Error,
    }
}

/// The alert Flagger posts: `Cluster` first when `cluster_name` is set, then the metadata fields when
/// asked for.
pub fn notification(
    canary: &Canary,
    alert: &flagger_core::machine::Alert,
    cluster_name: &str,
) -> flagger_notify::Alert {
    let mut notification = flagger_notify::Alert::new(
        canary.name_any(),
        canary.namespace().unwrap_or_default(),
        alert.message.clone(),
        severity(alert.severity),
    );
    if !cluster_name.is_empty() {
        notification.fields.push(Field::new("Cluster", cluster_name));
    }
    if alert.with_metadata {
        notification
            .fields
            .extend(flagger_notify::metadata_fields(canary));
    }
    notification
}

/// Sends alerts in the background. Cheap to clone.
#[derive(Clone, Default)]
pub struct Alerts {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    client: Client,
    cluster_name: String,
    global: Option<AnyNotifier>,
    sender: AlertSender,
    metrics: OperatorMetrics,
    _stop_sync: DropGuard,
}

impl Alerts {
    /// Alerts delivered by `sender`, with the global notifier of `config.notifier` (built here; as in
    /// Flagger, one that cannot be built — a Slack notifier without channel — is logged and left out)
    /// and `config.cluster_name`. Failures are counted in `metrics`; the sender's own counts are copied
    /// there in the background until every clone of the returned value is dropped, so use one `Alerts`
    /// per sender. Must be called inside a tokio runtime.
    pub fn new(
        client: Client,
        config: &ControllerConfig,
        sender: AlertSender,
        metrics: OperatorMetrics,
    ) -> Self {
        let global = config
            .notifier
            .as_ref()
            .and_then(|settings| match AnyNotifier::new(settings) {
                Ok(notifier) => {
                    tracing::info!("Notifications enabled for {}", notifier.redacted_destination());
                    Some(notifier)
                }
                Err(NotifyError::EmptyAddress) => None,
                Err(error) => {
                    tracing::error!("Notifier {error}");
                    None
                }
            });
        let stop = CancellationToken::new();
        tokio::spawn(sync_failures(sender.counters(), metrics.clone(), stop.clone()));
        Self {
            inner: Some(Arc::new(Inner {
                client,
                cluster_name: config.cluster_name.clone(),
                global,
                sender,
                metrics,
                _stop_sync: stop.drop_guard(),
            })),
        }
    }

    /// Alerts that are only logged (debug), never sent: for tests of other parts and for a controller
    /// built without an [`AlertSender`]. Same as [`Alerts::default`].
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Sends `alert` for `canary` to its alert providers whose severity accepts it, or to the global
    /// notifier when the canary has no alerts. Only enqueues (plus, for providers with a `secretRef`, a
    /// Secret GET); never fails: problems are logged.
    pub async fn send(&self, canary: &Canary, alert: &flagger_core::machine::Alert, caches: &Caches) {
        let key = canary.key();
        let Some(inner) = &self.inner else {
            tracing::debug!(canary = %key, "alerts disabled, not sent: {}", alert.message);
            return;
        };
        let notification = notification(canary, alert, &inner.cluster_name);
        let notifiers = match routing::recipients(canary, notification.severity) {
            Recipients::Global => inner.global.iter().cloned().collect(),
            Recipients::Providers(entries) => {
                let namespace = canary.namespace().unwrap_or_default();
                let mut notifiers = Vec::new();
                for entry in entries {
                    match inner.notifier(entry, &namespace, caches).await {
                        Ok(Some(notifier)) => notifiers.push(notifier),
                        Ok(None) => {}
                        Err(error) => {
                            inner
                                .metrics
                                .inc_alert_failure(error.provider().map_or("unknown", |p| p.as_str()));
                            tracing::error!(canary = %key, "{error}");
                        }
                    }
                }
                notifiers
            }
        };
        if notifiers.is_empty() {
            tracing::debug!(canary = %key, "no alert receiver for: {}", alert.message);
            return;
        }
        inner.sender.send_all(notification, notifiers);
    }
}

impl Inner {
    /// The notifier of one `analysis.alerts[]` entry; `None` when the provider has no address (Flagger
    /// sends nothing, silently).
    async fn notifier(
        &self,
        entry: &CanaryAlert,
        canary_namespace: &str,
        caches: &Caches,
    ) -> Result<Option<AnyNotifier>, AlertProviderError> {
        let name = entry.provider_ref.name.clone();
        let namespace = routing::provider_namespace(entry, canary_namespace).to_owned();
        let Some(provider) = caches.alert_provider(&namespace, &name) else {
            return Err(AlertProviderError::NotFound { name, namespace });
        };
        let provider_type = AlertProviderType::parse(&provider.spec.type_).ok();
        let secret = match &provider.spec.secret_ref {
            Some(secret_ref) => {
                let api: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
                match api.get(&secret_ref.name).await {
                    Ok(secret) => Some(secret.data.unwrap_or_default()),
                    Err(source) => {
                        return Err(AlertProviderError::Secret {
                            name,
                            namespace,
                            provider: provider_type,
                            source,
                        });
                    }
                }
            }
            None => None,
        };
        let config = match routing::provider_config(&provider.spec, secret.as_ref()) {
            Ok(config) => config,
            Err(source) => {
                return Err(AlertProviderError::Provider {
                    name,
                    namespace,
                    provider: provider_type,
                    source,
                });
            }
        };
        match AnyNotifier::new(&config) {
            Ok(notifier) => Ok(Some(notifier)),
            Err(NotifyError::EmptyAddress) => Ok(None),
            Err(source) => Err(AlertProviderError::Notifier {
                name,
                namespace,
                provider: config.provider,
                source,
            }),
        }
    }
}

/// Copies the sender's failed and dropped deliveries into `flagger_rs_alert_failures_total` every
/// [`METRICS_SYNC_INTERVAL`], and once more when stopped.
async fn sync_failures(counters: Arc<AlertCounters>, metrics: OperatorMetrics, stop: CancellationToken) {
    let mut seen: HashMap<AlertProviderType, u64> = HashMap::new();
    let mut copy = || {
        for (provider, counts) in counters.snapshot() {
            let total = counts.failed.saturating_add(counts.dropped);
            let last = seen.entry(provider).or_insert(0);
            for _ in *last..total {
                metrics.inc_alert_failure(provider.as_str());
            }
            *last = total;
        }
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                copy();
                return;
            }
            () = tokio::time::sleep(METRICS_SYNC_INTERVAL) => copy(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn canary(analysis: serde_json::Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 80},
                "analysis": analysis,
            },
        }))
        .expect("canary")
    }

    fn alert(severity: AlertSeverity, with_metadata: bool) -> flagger_core::machine::Alert {
        flagger_core::machine::Alert {
            severity,
            message: "New revision detected, progressing canary analysis.".into(),
            with_metadata,
        }
    }

    #[test]
    fn fields_are_cluster_then_metadata() {
        let c = canary(json!({"threshold": 5, "stepWeight": 10, "maxWeight": 50}));
        let n = notification(&c, &alert(AlertSeverity::Info, true), "prod");
        assert_eq!(n.subject(), "podinfo.test");
        assert_eq!(n.severity, Severity::Info);
        let fields: Vec<(&str, &str)> = n
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("Cluster", "prod"),
                ("Target", "Deployment/podinfo.test"),
                ("Failed checks threshold", "5"),
                ("Progress deadline", "600s"),
                ("Traffic routing", "Weight step: 10 max: 50"),
            ]
        );
        let plain = notification(&c, &alert(AlertSeverity::Error, false), "");
        assert!(plain.fields.is_empty());
        assert_eq!(plain.severity, Severity::Error);
    }

    #[test]
    fn severities_map_one_to_one() {
        assert_eq!(severity(AlertSeverity::Unset), Severity::Info);
        assert_eq!(severity(AlertSeverity::Info), Severity::Info);
        assert_eq!(severity(AlertSeverity::Warn), Severity::Warn);
        assert_eq!(severity(AlertSeverity::Error), Severity::Error);
    }

    #[test]
    fn provider_errors_read_like_flaggers_logs() {
        let err = AlertProviderError::NotFound {
            name: "slack".into(),
            namespace: "test".into(),
        };
        assert_eq!(
            err.to_string(),
            "alert provider slack.test error: alertprovider.flagger.app \"slack\" not found"
        );
        let err = AlertProviderError::Provider {
            name: "slack".into(),
            namespace: "test".into(),
            provider: Some(AlertProviderType::Slack),
            source: ProviderError::SecretWithoutAddress,
        };
        assert_eq!(
            err.to_string(),
            "alert provider slack.test secret does not contain an address"
        );
        let unknown = AlertProviderType::parse("pager").expect_err("unknown");
        let err = AlertProviderError::Provider {
            name: "p".into(),
            namespace: "test".into(),
            provider: None,
            source: ProviderError::UnknownType(unknown),
        };
        assert_eq!(
            err.to_string(),
            "alert provider p.test error: provider pager not supported"
        );
    }
}
