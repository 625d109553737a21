//! The operator settings the controller needs, built by the binary from Flagger's flags.

use std::time::Duration;

use flagger_core::primary::WorkloadOptions;
use flagger_core::provider::MeshProvider;
use flagger_notify::NotifierConfig;

/// Settings of one operator process.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// `-mesh-provider`: the provider of canaries without `spec.provider`.
    pub mesh_provider: MeshProvider,
    /// `-metrics-server`: the Prometheus that answers the builtin metrics.
    pub metrics_server: String,
    /// `-namespace`: watch only this namespace (`None`: all namespaces).
    pub namespace: Option<String>,
    /// `-selector-labels` and `-include-label-prefix`.
    pub workload: WorkloadOptions,
    /// `-enable-config-tracking`.
    pub enable_config_tracking: bool,
    /// `-no-cross-namespace-refs`.
    pub no_cross_namespace_refs: bool,
    /// `-event-webhook` (or `EVENT_WEBHOOK_URL`): where events go when a canary has no `event` webhook.
    pub event_webhook: Option<String>,
    /// The global notifier (`-slack-*`, `-msteams-*`), used when a canary has no alerts of its own.
    pub notifier: Option<NotifierConfig>,
    /// `-cluster-name`: shown in alerts.
    pub cluster_name: String,
    /// `-control-loop-interval`: how often every canary is looked at even without a watch event
    /// (a safety net; ticks are derived from each canary's status).
    pub control_loop_interval: Duration,
    /// The name this process reports events as (`flagger`).
    pub component: String,
    /// This process's identity (pod name), recorded in events.
    pub instance: String,
    /// `-ingress-annotations-prefix`: the annotation prefix of the NGINX router.
    pub ingress_annotations_prefix: String,
    /// `-ingress-class`: the `spec.ingressClassName` of the Contour router's HTTPProxies (empty: none).
    pub ingress_class: String,
}

impl ControllerConfig {
    /// Flagger's defaults, for tests: Istio, Prometheus at `http://prometheus:9090`, all namespaces.
    pub fn new(mesh_provider: MeshProvider) -> Self {
        Self {
            mesh_provider,
            metrics_server: "http://prometheus:9090".into(),
            namespace: None,
            workload: WorkloadOptions::default(),
            enable_config_tracking: true,
            no_cross_namespace_refs: false,
            event_webhook: None,
            notifier: None,
            cluster_name: String::new(),
            control_loop_interval: Duration::from_secs(10),
            component: "flagger".into(),
            instance: "flagger".into(),
            ingress_annotations_prefix: "nginx.ingress.kubernetes.io".into(),
            ingress_class: String::new(),
        }
    }
}
