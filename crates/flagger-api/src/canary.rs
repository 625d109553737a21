//! The `Canary` resource: which workload to release progressively, how traffic reaches it, and how each
//! release is analysed.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    duration::parse_go_duration,
    gateway::{HttpRequestMirrorFilter, ParentReference},
    istio::{CorsPolicy, Headers, HttpMatchRequest, HttpRetry, TrafficPolicy},
    schema,
    status::CanaryStatus,
};

/// Analysis interval used when `analysis.interval` is missing or not a valid duration.
pub const DEFAULT_ANALYSIS_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest analysis interval; shorter intervals are raised to this.
pub const MIN_ANALYSIS_INTERVAL: Duration = Duration::from_secs(10);
/// Progress deadline used when `progressDeadlineSeconds` is not set.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// Percentage of ready pods required when `primaryReadyThreshold`/`canaryReadyThreshold` is not set.
pub const DEFAULT_READY_THRESHOLD: i32 = 100;
/// The total traffic weight; also the maximum canary weight when `maxWeight` is not set.
pub const TOTAL_WEIGHT: i32 = 100;
/// Service port name used when `service.portName` is not set.
pub const DEFAULT_PORT_NAME: &str = "http";
/// Query interval of a metric that does not set `interval`.
pub const DEFAULT_METRIC_INTERVAL: &str = "1m";
/// Session affinity cookie lifetime in seconds when `sessionAffinity.maxAge` is not set.
pub const DEFAULT_COOKIE_MAX_AGE: i64 = 86400;
/// The Istio gateway used when `service.gateways` is empty.
pub const DEFAULT_ISTIO_GATEWAY: &str = "mesh";
/// The `apiVersion` that, together with `kind: Service`, marks a Knative Service target.
pub const KNATIVE_SERVICE_API_VERSION: &str = "serving.knative.dev/v1";

/// Desired state of a Canary: the workload to release progressively, the Services and routes Flagger
/// generates for it, and how every new revision is analysed before it is promoted.
// Clippy reads the repeated `printcolumn(type_ = .., priority = ..)` keys as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "Canary",
    plural = "canaries",
    singular = "canary",
    namespaced,
    status = "CanaryStatus",
    category = "all",
    annotation("helm.sh/resource-policy", "keep"),
    derive = "PartialEq",
    doc = "Canary automates the progressive release of a Deployment, DaemonSet or Service: it creates a \
           primary copy, shifts traffic step by step to each new revision while checking metrics, and \
           promotes or rolls back.",
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Weight", type_ = "string", json_path = ".status.canaryWeight"),
    printcolumn(
        name = "Suspended",
        type_ = "boolean",
        json_path = ".spec.suspend",
        priority = 1
    ),
    printcolumn(
        name = "FailedChecks",
        type_ = "string",
        json_path = ".status.failedChecks",
        priority = 1
    ),
    printcolumn(
        name = "Interval",
        type_ = "string",
        json_path = ".spec.analysis.interval",
        priority = 1
    ),
    printcolumn(
        name = "Mirror",
        type_ = "boolean",
        json_path = ".spec.analysis.mirror",
        priority = 1
    ),
    printcolumn(
        name = "StepWeight",
        type_ = "string",
        json_path = ".spec.analysis.stepWeight",
        priority = 1
    ),
    printcolumn(
        name = "StepWeights",
        type_ = "string",
        json_path = ".spec.analysis.stepWeights",
        priority = 1
    ),
    printcolumn(
        name = "MaxWeight",
        type_ = "string",
        json_path = ".spec.analysis.maxWeight",
        priority = 1
    ),
    printcolumn(
        name = "LastTransitionTime",
        type_ = "string",
        json_path = ".status.lastTransitionTime"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["targetRef", "analysis"]))]
pub struct CanarySpec {
    /// Traffic management provider for this canary, overriding the controller's `-mesh-provider`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = [
        "apisix", "appmesh", "appmesh:v1beta2", "contour", "gatewayapi:v1", "gatewayapi:v1beta1", "gloo",
        "istio", "knative", "kubernetes", "kuma", "linkerd", "nginx", "osm", "skipper", "smi:v1alpha1",
        "smi:v1alpha2", "smi:v1alpha3", "traefik"
    ]))]
    pub provider: Option<String>,

    /// Prometheus URL for the built-in metrics and inline queries of this canary, overriding the
    /// controller's `-metrics-server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_server: Option<String>,

    /// The workload released progressively: a Deployment, a DaemonSet, or a Service (Kubernetes or
    /// Knative).
    pub target_ref: LocalObjectReference,

    /// The HorizontalPodAutoscaler or KEDA ScaledObject of the target; Flagger creates a copy for the
    /// primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler_ref: Option<AutoscalerReference>,

    /// The Ingress that routes traffic to the target (NGINX and Skipper providers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_ref: Option<LocalObjectReference>,

    /// The ApisixRoute that routes traffic to the target (APISIX provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_ref: Option<LocalObjectReference>,

    /// A Gloo Upstream whose settings are copied into the generated upstreams (Gloo provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ref: Option<CrossNamespaceObjectReference>,

    /// The Services (apex, primary, canary) generated for the target, and the routing settings of the
    /// provider.
    #[serde(default, skip_serializing_if = "CanaryService::is_unset")]
    pub service: CanaryService,

    /// How each new revision is analysed and how traffic is shifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<CanaryAnalysis>,

    /// Deprecated name of `analysis`, used only when `analysis` is absent. Not part of the CRD schema,
    /// so the API server drops it; kept here so that old manifests still read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub canary_analysis: Option<CanaryAnalysis>,

    /// Seconds a rollout may make no progress before it is rolled back (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,

    /// Promote new revisions without analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_analysis: Option<bool>,

    /// On deletion of the Canary, restore the target and the routing objects to their original state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_on_deletion: Option<bool>,

    /// Pause all processing of this canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// A reference to an object in the Canary's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    /// API version of the object, e.g. `apps/v1`.
    pub api_version: String,

    /// Kind of the object.
    pub kind: String,

    /// Name of the object.
    pub name: String,
}

impl LocalObjectReference {
    /// Whether this is a Knative Service (`kind: Service`, `apiVersion: serving.knative.dev/v1`, both
    /// exactly).
    pub fn is_knative_service(&self) -> bool {
        self.kind == "Service" && self.api_version == KNATIVE_SERVICE_API_VERSION
    }
}

/// A reference to an object that may live in another namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrossNamespaceObjectReference {
    /// API version of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,

    /// Kind of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,

    /// Name of the object.
    pub name: String,

    /// Namespace of the object; defaults to the Canary's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl CrossNamespaceObjectReference {
    /// The namespace the object lives in: `namespace` if set and not empty, else `default_namespace`
    /// (the referring Canary's namespace).
    pub fn namespace_or<'a>(&'a self, default_namespace: &'a str) -> &'a str {
        match self.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns,
            _ => default_namespace,
        }
    }
}

/// A reference to the target's autoscaler.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerReference {
    /// API version of the autoscaler, e.g. `autoscaling/v2` or `keda.sh/v1alpha1`.
    pub api_version: String,

    /// Kind of the autoscaler.
    #[schemars(extend("enum" = ["HorizontalPodAutoscaler", "ScaledObject"]))]
    pub kind: String,

    /// Name of the autoscaler.
    pub name: String,

    /// ScaledObject only: replacement queries for the primary's triggers, keyed by trigger name. Without
    /// it, the target's name in each trigger query is replaced by the primary's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_scaler_queries: Option<BTreeMap<String, String>>,

    /// Replica bounds for the primary's autoscaler, overriding those copied from the target's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_scaler_replicas: Option<ScalerReplicas>,
}

/// Replica bounds of an autoscaler.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalerReplicas {
    /// Lowest replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,

    /// Highest replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replicas: Option<i32>,
}

/// The Services Flagger generates for the target (`<name>`, `<name>-primary`, `<name>-canary`) and the
/// settings of the routing objects built by the provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryService {
    /// Name of the apex Service; defaults to the target's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Port the generated Services listen on.
    pub port: i32,

    /// Name of the Service port (default `http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,

    /// Application protocol of the Service port; `tcp` makes the Istio provider route TCP instead of HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,

    /// Traffic distribution preference set on the generated Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["PreferClose", "PreferSameZone", "PreferSameNode"]))]
    pub traffic_distribution: Option<String>,

    /// Container port (number or name) the Services forward to; defaults to `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::int_or_string")]
    pub target_port: Option<IntOrString>,

    /// Also expose every other container port of the target on the generated Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_discovery: Option<bool>,

    /// Generate headless Services (`clusterIP: None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headless: Option<bool>,

    /// Request timeout of the generated routes, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,

    /// Timeout of each request to a backend (Gateway API `v1` only), e.g. `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_timeout: Option<String>,

    /// App Mesh mesh name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_name: Option<String>,

    /// App Mesh backends: virtual service names or ARNs the target calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<Vec<String>>,

    /// Host names the generated routes answer to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,

    /// Generate an Istio delegate VirtualService (no hosts, no gateways) for use from another
    /// VirtualService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<bool>,

    /// Conditions a request must meet to be routed to this service.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "match")]
    pub match_: Option<Vec<HttpMatchRequest>>,

    /// Retry policy of the generated routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,

    /// URI and authority rewrite of the generated routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,

    /// Backends that receive a copy of every request (Gateway API only, always on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Vec<HttpRequestMirrorFilter>>,

    /// Header changes applied by the generated routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,

    /// Istio gateways the VirtualService is bound to (default `mesh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<Vec<String>>,

    /// Gateway API parents (Gateways) the generated HTTPRoute attaches to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub gateway_refs: Option<Vec<ParentReference>>,

    /// Cross-origin resource sharing policy of the generated routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,

    /// Istio traffic policy copied into the primary and canary DestinationRules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,

    /// Labels and annotations for the apex Service and the routing object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apex: Option<CustomMetadata>,

    /// Labels and annotations for the primary Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<CustomMetadata>,

    /// Labels and annotations for the canary Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CustomMetadata>,

    /// Label and annotation keys on the generated Services that Flagger leaves alone (set by others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmanaged_metadata: Option<UnmanagedMetadata>,
}

impl CanaryService {
    /// Whether nothing at all was written (the spec had no `service`). A `service` whose only field is
    /// `port: 0` looks the same and is not written back; the CRD requires a port anyway.
    pub fn is_unset(&self) -> bool {
        *self == Self::default()
    }

    /// Name of the Service port: `portName`, or `http` when unset or empty.
    pub fn port_name(&self) -> &str {
        match self.port_name.as_deref() {
            Some(name) if !name.is_empty() => name,
            _ => DEFAULT_PORT_NAME,
        }
    }

    /// Port the generated Services forward to: `targetPort`, or `port` when unset or zero.
    pub fn target_port(&self) -> IntOrString {
        match &self.target_port {
            Some(IntOrString::Int(0)) | None => IntOrString::Int(self.port),
            Some(IntOrString::String(s)) if s.is_empty() || s == "0" => IntOrString::Int(self.port),
            Some(port) => port.clone(),
        }
    }

    /// Istio gateways of the VirtualService: `gateways`, or `["mesh"]` when empty.
    pub fn istio_gateways(&self) -> Vec<String> {
        match &self.gateways {
            Some(gateways) if !gateways.is_empty() => gateways.clone(),
            _ => vec![DEFAULT_ISTIO_GATEWAY.to_owned()],
        }
    }
}

/// Labels and annotations to put on a generated object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomMetadata {
    /// Labels to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Annotations to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Metadata keys on generated Services that other controllers own and Flagger must not remove.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnmanagedMetadata {
    /// Annotation keys to preserve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Vec<String>>,

    /// Label keys to preserve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

/// URI and authority rewrite of the generated routes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRewrite {
    /// Replacement for the matched path (Istio) or the full path/prefix (Gateway API, see `type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub uri: Option<String>,

    /// Replacement for the Host/Authority header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "string"))]
    pub authority: Option<String>,

    /// Gateway API only: `ReplacePrefixMatch` replaces the matched prefix; anything else replaces the
    /// full path.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    #[schemars(extend("format" = "string"))]
    pub type_: Option<String>,
}

impl HttpRewrite {
    /// The Gateway API path modifier: `ReplacePrefixMatch` when `type` says so, else `ReplaceFullPath`.
    pub fn gateway_api_type(&self) -> &'static str {
        if self.type_.as_deref() == Some("ReplacePrefixMatch") {
            "ReplacePrefixMatch"
        } else {
            "ReplaceFullPath"
        }
    }
}

/// How each new revision is analysed: the schedule, the traffic steps, and the checks that decide between
/// promotion and rollback.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [
    {"required": ["interval", "threshold", "iterations"]},
    {"required": ["interval", "threshold", "stepWeight"]},
    {"required": ["interval", "threshold", "stepWeights"]}
]))]
pub struct CanaryAnalysis {
    /// Time between two analysis steps, e.g. `1m` (at least 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = schema::INTERVAL_PATTERN))]
    pub interval: Option<String>,

    /// Number of checks for A/B testing and Blue/Green releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<i32>,

    /// Failed checks tolerated before the release is rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<i32>,

    /// Highest traffic weight routed to the canary (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_weight: Option<i32>,

    /// Traffic weight added to the canary at each step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_weight: Option<i32>,

    /// Explicit canary weights for each step, e.g. `[5, 10, 25, 50]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_weights: Option<Vec<i32>>,

    /// Traffic weight moved to the primary at each promotion step; unset moves it all at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_weight_promotion: Option<i32>,

    /// Mirror traffic to the canary before shifting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<bool>,

    /// Percentage of traffic mirrored (Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_weight: Option<i32>,

    /// Percentage of primary pods that must be available for the primary to count as ready (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_ready_threshold: Option<i32>,

    /// Percentage of canary pods that must be available for the canary to count as ready (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_ready_threshold: Option<i32>,

    /// A/B testing: requests matching any of these conditions are routed to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "match")]
    #[schemars(schema_with = "schema::analysis_match")]
    pub match_: Option<Vec<HttpMatchRequest>>,

    /// Checks run at every step; a failed check counts towards `threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<CanaryMetric>>,

    /// Webhooks called at the stages of a release (gates, load tests, notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Vec<CanaryWebhook>>,

    /// Alert providers notified about the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Vec<CanaryAlert>>,

    /// Keep users who reached the canary on the canary during the release, with a cookie (Istio and
    /// Gateway API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
}

impl CanaryAnalysis {
    /// Time between analysis steps: `interval` parsed as a Go duration; 60s when missing or invalid;
    /// raised to 10s when shorter (negative durations included).
    pub fn interval(&self) -> Duration {
        let Some(parsed) = self.interval.as_deref().and_then(parse_go_duration) else {
            return DEFAULT_ANALYSIS_INTERVAL;
        };
        if parsed.negative || parsed.magnitude < MIN_ANALYSIS_INTERVAL {
            MIN_ANALYSIS_INTERVAL
        } else {
            parsed.magnitude
        }
    }

    /// Failed checks before rollback: `threshold`, or 1 when unset, zero or negative.
    pub fn threshold(&self) -> i32 {
        match self.threshold {
            Some(t) if t > 0 => t,
            _ => 1,
        }
    }

    /// Number of iterations (A/B and Blue/Green), 0 when unset.
    pub fn iterations(&self) -> i32 {
        self.iterations.unwrap_or(0)
    }

    /// Highest canary weight. With non-empty `stepWeights` it is the last step weight capped at 100 and
    /// `maxWeight` is ignored (even when `stepWeight` is also set, as in Flagger); otherwise `maxWeight`
    /// when positive, else 100.
    pub fn max_weight(&self) -> i32 {
        if let Some(last) = self.step_weights().last() {
            return (*last).min(TOTAL_WEIGHT);
        }
        match self.max_weight {
            Some(w) if w > 0 => w,
            _ => TOTAL_WEIGHT,
        }
    }

    /// Traffic weight added to the canary at each step: `stepWeight`, 0 when unset.
    pub fn step_weight(&self) -> i32 {
        self.step_weight.unwrap_or(0)
    }

    /// The explicit step weights: `stepWeights`, empty when unset.
    pub fn step_weights(&self) -> &[i32] {
        self.step_weights.as_deref().unwrap_or_default()
    }

    /// Traffic weight moved to the primary at each promotion step: `stepWeightPromotion`, 0 (all at once)
    /// when unset.
    pub fn step_weight_promotion(&self) -> i32 {
        self.step_weight_promotion.unwrap_or(0)
    }

    /// Whether traffic is mirrored to the canary before it is shifted: `mirror`, false when unset.
    pub fn mirror(&self) -> bool {
        self.mirror.unwrap_or(false)
    }

    /// Percentage of primary pods that must be available (default 100).
    pub fn primary_ready_threshold(&self) -> i32 {
        self.primary_ready_threshold.unwrap_or(DEFAULT_READY_THRESHOLD)
    }

    /// Percentage of canary pods that must be available (default 100).
    pub fn canary_ready_threshold(&self) -> i32 {
        self.canary_ready_threshold.unwrap_or(DEFAULT_READY_THRESHOLD)
    }

    /// The A/B match conditions (empty when unset).
    pub fn match_conditions(&self) -> &[HttpMatchRequest] {
        self.match_.as_deref().unwrap_or_default()
    }

    /// The metric checks (empty when unset).
    pub fn metrics(&self) -> &[CanaryMetric] {
        self.metrics.as_deref().unwrap_or_default()
    }

    /// The webhooks (empty when unset).
    pub fn webhooks(&self) -> &[CanaryWebhook] {
        self.webhooks.as_deref().unwrap_or_default()
    }

    /// The alerts (empty when unset).
    pub fn alerts(&self) -> &[CanaryAlert] {
        self.alerts.as_deref().unwrap_or_default()
    }

    /// The release strategy these settings select (see [`DeploymentStrategy`]).
    pub fn strategy(&self) -> DeploymentStrategy {
        let iterations = self.iterations();
        if iterations > 0 && !self.match_conditions().is_empty() {
            DeploymentStrategy::AbTesting
        } else if iterations > 0 {
            DeploymentStrategy::BlueGreen
        } else {
            DeploymentStrategy::Canary
        }
    }
}

/// The release strategy of a canary, derived from its analysis settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeploymentStrategy {
    /// Progressive traffic shifting (`stepWeight`/`stepWeights`); also the strategy without analysis.
    Canary,
    /// `iterations` without `match`: checks run with no traffic shift, then all traffic switches at once.
    BlueGreen,
    /// `iterations` with `match`: only matching requests reach the canary during the checks.
    AbTesting,
}

impl DeploymentStrategy {
    /// Flagger's name of the strategy: `canary`, `blue-green` or `ab-testing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Canary => "canary",
            Self::BlueGreen => "blue-green",
            Self::AbTesting => "ab-testing",
        }
    }
}

impl std::fmt::Display for DeploymentStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Session affinity: once a user is routed to the canary, a cookie keeps them there.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionAffinity {
    /// Name of the cookie that pins users to the canary.
    pub cookie_name: String,

    /// Name of the cookie that pins users to the primary (optional, must differ from `cookieName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_cookie_name: Option<String>,

    /// `Domain` attribute of the cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,

    /// Set the `HttpOnly` attribute, hiding the cookies from scripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_only: Option<bool>,

    /// Lifetime of the canary cookie in seconds (default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 86400))]
    pub max_age: Option<i64>,

    /// Set the `Partitioned` attribute (partitioned cookie storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioned: Option<bool>,

    /// `Path` attribute of the cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,

    /// `SameSite` attribute of the cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Strict", "Lax", "None"]))]
    pub same_site: Option<String>,

    /// Set the `Secure` attribute (cookies only sent over https, except to localhost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
}

impl SessionAffinity {
    /// Cookie lifetime in seconds: `maxAge`, or 86400 when unset or zero.
    pub fn max_age(&self) -> i64 {
        match self.max_age {
            Some(age) if age != 0 => age,
            _ => DEFAULT_COOKIE_MAX_AGE,
        }
    }

    /// The `Set-Cookie` value for `cookie` (`name=value`) with the given `Max-Age` and the configured
    /// attributes, in Flagger's order: `Max-Age`, `Domain`, `HttpOnly`, `Partitioned`, `Path`,
    /// `SameSite`, `Secure`.
    pub fn build_cookie(&self, cookie: &str, max_age: i64) -> String {
        let mut out = format!("{cookie}; Max-Age={max_age}");
        if let Some(domain) = self.domain.as_deref().filter(|d| !d.is_empty()) {
            out.push_str("; Domain=");
            out.push_str(domain);
        }
        if self.http_only == Some(true) {
            out.push_str("; HttpOnly");
        }
        if self.partitioned == Some(true) {
            out.push_str("; Partitioned");
        }
        if let Some(path) = self.path.as_deref().filter(|p| !p.is_empty()) {
            out.push_str("; Path=");
            out.push_str(path);
        }
        if let Some(same_site) = self.same_site.as_deref().filter(|s| !s.is_empty()) {
            out.push_str("; SameSite=");
            out.push_str(same_site);
        }
        if self.secure == Some(true) {
            out.push_str("; Secure");
        }
        out
    }
}

/// A check run at every analysis step: a built-in metric, a MetricTemplate query, or an inline
/// Prometheus query.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryMetric {
    /// Name of the metric; `request-success-rate` and `request-duration` run the built-in checks by name,
    /// even when a `templateRef` is also set (as Flagger does).
    pub name: String,

    /// Time window of the query, e.g. `1m` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = schema::INTERVAL_PATTERN))]
    pub interval: Option<String>,

    /// Deprecated: highest accepted value; use `thresholdRange.max`.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "go_float")]
    pub threshold: Option<f64>,

    /// Accepted range of the value; a value outside fails the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_range: Option<CanaryThresholdRange>,

    /// Deprecated: inline Prometheus query; use a MetricTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,

    /// The MetricTemplate that defines the query and its provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<CrossNamespaceObjectReference>,

    /// Values for `{{ variables.<key> }}` in the template's query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_variables: Option<BTreeMap<String, String>>,
}

impl CanaryMetric {
    /// Query window: `interval`, or `1m` when unset or empty.
    pub fn interval(&self) -> &str {
        match self.interval.as_deref() {
            Some(i) if !i.is_empty() => i,
            _ => DEFAULT_METRIC_INTERVAL,
        }
    }
}

/// Writes a float as Go's `encoding/json` does: whole numbers without a fraction (`99`, not `99.0`), so
/// that a value read from a manifest is written back unchanged.
fn go_float<S: serde::Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
    const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    match value {
        #[expect(clippy::cast_possible_truncation, reason = "whole and within ±2^53, so exact")]
        Some(v) if v.fract() == 0.0 && v.abs() < EXACT_INTEGER_LIMIT => serializer.serialize_i64(*v as i64),
        Some(v) => serializer.serialize_f64(*v),
        None => serializer.serialize_none(),
    }
}

/// Accepted range of a metric value (bounds inclusive).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryThresholdRange {
    /// Lowest accepted value.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "go_float")]
    pub min: Option<f64>,

    /// Highest accepted value.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "go_float")]
    pub max: Option<f64>,
}

/// Severity level of an alert.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum AlertSeverity {
    /// Written as `""`: treated as info, and such alerts are sent by flagger-rs (Flagger never sends
    /// them).
    #[default]
    #[serde(rename = "")]
    Unset,
    /// Every event.
    #[serde(rename = "info")]
    Info,
    /// Warnings (e.g. waiting for approval) and errors.
    #[serde(rename = "warn")]
    Warn,
    /// Errors only (e.g. rollback).
    #[serde(rename = "error")]
    Error,
}

/// An alert provider notified about the release.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAlert {
    /// Name of this alert.
    pub name: String,

    /// Lowest severity that is sent: `info`, `warn` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<AlertSeverity>,

    /// The AlertProvider that sends the notifications.
    pub provider_ref: CrossNamespaceObjectReference,
}

/// When a webhook is called.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum HookType {
    /// Written as `""`; same as `rollout`.
    #[default]
    #[serde(rename = "")]
    Unset,
    /// Gate before the canary is scaled up; the release waits until it answers 200.
    #[serde(rename = "confirm-rollout")]
    ConfirmRollout,
    /// Before traffic is shifted; a failure counts towards the threshold.
    #[serde(rename = "pre-rollout")]
    PreRollout,
    /// At every analysis step; a failure counts towards the threshold.
    #[serde(rename = "rollout")]
    Rollout,
    /// Gate before promotion; the release waits until it answers 200.
    #[serde(rename = "confirm-promotion")]
    ConfirmPromotion,
    /// After promotion or rollback.
    #[serde(rename = "post-rollout")]
    PostRollout,
    /// For every event Flagger emits.
    #[serde(rename = "event")]
    Event,
    /// Polled during analysis; 200 triggers a rollback.
    #[serde(rename = "rollback")]
    Rollback,
    /// Gate before each traffic increase.
    #[serde(rename = "confirm-traffic-increase")]
    ConfirmTrafficIncrease,
}

impl HookType {
    /// Flagger's name of the hook type (`""` for [`HookType::Unset`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unset => "",
            Self::ConfirmRollout => "confirm-rollout",
            Self::PreRollout => "pre-rollout",
            Self::Rollout => "rollout",
            Self::ConfirmPromotion => "confirm-promotion",
            Self::PostRollout => "post-rollout",
            Self::Event => "event",
            Self::Rollback => "rollback",
            Self::ConfirmTrafficIncrease => "confirm-traffic-increase",
        }
    }
}

/// An HTTP endpoint called at a stage of the release.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryWebhook {
    /// Name of this webhook.
    pub name: String,

    /// When the webhook is called (default `rollout`).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub type_: Option<HookType>,

    /// Do not send alerts when this webhook fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mute_alert: Option<bool>,

    /// URL the webhook POSTs to.
    #[schemars(extend("format" = "url"))]
    pub url: String,

    /// Request timeout, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = schema::INTERVAL_PATTERN))]
    pub timeout: Option<String>,

    /// How many times a failed request is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i32>,

    /// Skip TLS certificate verification.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "disableTLS")]
    pub disable_tls: Option<bool>,

    /// Key-value pairs sent in the webhook payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl CanaryWebhook {
    /// When the webhook is called: `type`, with unset and `""` meaning [`HookType::Rollout`].
    pub fn hook_type(&self) -> HookType {
        match self.type_ {
            None | Some(HookType::Unset) => HookType::Rollout,
            Some(t) => t,
        }
    }
}

impl Canary {
    /// The analysis settings: `analysis`, else the deprecated `canaryAnalysis`.
    pub fn analysis(&self) -> Option<&CanaryAnalysis> {
        self.spec.analysis.as_ref().or(self.spec.canary_analysis.as_ref())
    }

    /// Whether new revisions are promoted without analysis: `skipAnalysis`, or no analysis at all.
    pub fn skip_analysis(&self) -> bool {
        self.analysis().is_none() || self.spec.skip_analysis == Some(true)
    }

    /// Whether processing is paused (`suspend`).
    pub fn is_suspended(&self) -> bool {
        self.spec.suspend == Some(true)
    }

    /// Whether deleting the Canary restores the original objects (`revertOnDeletion`).
    pub fn revert_on_deletion(&self) -> bool {
        self.spec.revert_on_deletion == Some(true)
    }

    /// The release strategy (canary when there is no analysis).
    pub fn strategy(&self) -> DeploymentStrategy {
        self.analysis()
            .map_or(DeploymentStrategy::Canary, CanaryAnalysis::strategy)
    }

    /// Whether the target is a Knative Service.
    pub fn is_knative_target(&self) -> bool {
        self.spec.target_ref.is_knative_service()
    }

    /// Seconds without progress before rollback (`progressDeadlineSeconds`, default 600).
    pub fn progress_deadline_seconds(&self) -> i32 {
        self.spec
            .progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
    }

    /// Time between analysis steps (see [`CanaryAnalysis::interval`]); 60s without analysis.
    pub fn analysis_interval(&self) -> Duration {
        self.analysis()
            .map_or(DEFAULT_ANALYSIS_INTERVAL, CanaryAnalysis::interval)
    }

    /// Failed checks before rollback (see [`CanaryAnalysis::threshold`]); 1 without analysis.
    pub fn analysis_threshold(&self) -> i32 {
        self.analysis().map_or(1, CanaryAnalysis::threshold)
    }

    /// Name of the apex Service: `service.name`, or the target's name when unset or empty.
    pub fn service_name(&self) -> &str {
        match self.spec.service.name.as_deref() {
            Some(name) if !name.is_empty() => name,
            _ => &self.spec.target_ref.name,
        }
    }

    /// Name of the primary Service: `<service name>-primary`.
    pub fn primary_service_name(&self) -> String {
        format!("{}-primary", self.service_name())
    }

    /// Name of the canary Service: `<service name>-canary`.
    pub fn canary_service_name(&self) -> String {
        format!("{}-canary", self.service_name())
    }

    /// Name of the primary workload: `<target name>-primary`.
    pub fn primary_name(&self) -> String {
        format!("{}-primary", self.spec.target_ref.name)
    }

    /// The key of this canary in logs and metrics: `<name>.<namespace>`.
    pub fn key(&self) -> String {
        format!(
            "{}.{}",
            self.metadata.name.as_deref().unwrap_or_default(),
            self.metadata.namespace.as_deref().unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(interval: Option<&str>) -> CanaryAnalysis {
        CanaryAnalysis {
            interval: interval.map(str::to_owned),
            ..CanaryAnalysis::default()
        }
    }

    #[test]
    fn interval_defaults_to_a_minute_and_is_at_least_ten_seconds() {
        let secs = |i: Option<&str>| analysis(i).interval().as_secs_f64();
        assert_eq!(secs(None), 60.0);
        assert_eq!(secs(Some("")), 60.0);
        assert_eq!(secs(Some("1d")), 60.0, "not a Go duration");
        assert_eq!(secs(Some("5s")), 10.0);
        assert_eq!(secs(Some("-5m")), 10.0);
        assert_eq!(secs(Some("90s")), 90.0);
        assert_eq!(secs(Some("1m30s")), 90.0);
        assert_eq!(secs(Some("1.5h")), 5400.0);
        assert_eq!(
            secs(Some("99999999999999999999999m")),
            60.0,
            "overflows, passes the CRD pattern"
        );
    }

    #[test]
    fn threshold_below_one_means_one() {
        for (t, want) in [(None, 1), (Some(0), 1), (Some(-3), 1), (Some(5), 5)] {
            assert_eq!(
                CanaryAnalysis {
                    threshold: t,
                    ..CanaryAnalysis::default()
                }
                .threshold(),
                want
            );
        }
    }

    #[test]
    fn max_weight_follows_step_weights_then_max_weight_then_100() {
        let a = |max, step, steps: Option<Vec<i32>>| CanaryAnalysis {
            max_weight: max,
            step_weight: step,
            step_weights: steps,
            ..CanaryAnalysis::default()
        };
        assert_eq!(a(None, Some(10), None).max_weight(), 100);
        assert_eq!(a(Some(50), Some(10), None).max_weight(), 50);
        assert_eq!(a(Some(0), Some(10), None).max_weight(), 100);
        assert_eq!(a(Some(50), None, Some(vec![1, 5, 30])).max_weight(), 30);
        assert_eq!(a(Some(50), Some(10), Some(vec![1, 5, 30])).max_weight(), 30);
        assert_eq!(a(None, None, Some(vec![20, 150])).max_weight(), 100);
        assert_eq!(a(Some(40), None, Some(vec![])).max_weight(), 40);
    }

    #[test]
    fn step_and_mirror_accessors_default_as_flagger() {
        let unset = CanaryAnalysis::default();
        assert_eq!(unset.step_weight(), 0);
        assert!(unset.step_weights().is_empty());
        assert_eq!(unset.step_weight_promotion(), 0);
        assert!(!unset.mirror());
        let set = CanaryAnalysis {
            step_weight: Some(10),
            step_weights: Some(vec![5, 25]),
            step_weight_promotion: Some(50),
            mirror: Some(true),
            ..CanaryAnalysis::default()
        };
        assert_eq!(set.step_weight(), 10);
        assert_eq!(set.step_weights(), [5, 25]);
        assert_eq!(set.step_weight_promotion(), 50);
        assert!(set.mirror());
    }

    #[test]
    fn strategy_needs_iterations_for_ab_and_blue_green() {
        let m = Some(vec![HttpMatchRequest::default()]);
        let a = |iterations, match_: Option<Vec<HttpMatchRequest>>| CanaryAnalysis {
            iterations,
            match_,
            ..CanaryAnalysis::default()
        };
        assert_eq!(a(Some(5), m.clone()).strategy(), DeploymentStrategy::AbTesting);
        assert_eq!(a(Some(5), None).strategy(), DeploymentStrategy::BlueGreen);
        assert_eq!(a(Some(5), Some(vec![])).strategy(), DeploymentStrategy::BlueGreen);
        assert_eq!(
            a(None, m.clone()).strategy(),
            DeploymentStrategy::Canary,
            "match without iterations"
        );
        assert_eq!(a(Some(0), m).strategy(), DeploymentStrategy::Canary);
        assert_eq!(DeploymentStrategy::AbTesting.to_string(), "ab-testing");
        assert_eq!(DeploymentStrategy::BlueGreen.as_str(), "blue-green");
    }

    #[test]
    fn service_defaults() {
        let mut s = CanaryService {
            port: 9898,
            ..CanaryService::default()
        };
        assert_eq!(s.port_name(), "http");
        assert_eq!(s.target_port(), IntOrString::Int(9898));
        assert_eq!(s.istio_gateways(), ["mesh"]);
        s.target_port = Some(IntOrString::String("http-metrics".into()));
        s.port_name = Some(String::new());
        s.gateways = Some(vec!["public".into()]);
        assert_eq!(s.target_port(), IntOrString::String("http-metrics".into()));
        assert_eq!(s.port_name(), "http");
        assert_eq!(s.istio_gateways(), ["public"]);
        s.target_port = Some(IntOrString::Int(0));
        assert_eq!(s.target_port(), IntOrString::Int(9898));
    }

    #[test]
    fn knative_needs_both_kind_and_api_version() {
        let r = |api: &str, kind: &str| LocalObjectReference {
            api_version: api.into(),
            kind: kind.into(),
            name: "x".into(),
        };
        assert!(r("serving.knative.dev/v1", "Service").is_knative_service());
        assert!(!r("v1", "Service").is_knative_service());
        assert!(!r("serving.knative.dev/v1alpha1", "Service").is_knative_service());
        assert!(!r("serving.knative.dev/v1", "Deployment").is_knative_service());
    }

    #[test]
    fn cookies_carry_the_attributes_in_flaggers_order() {
        let mut affinity = SessionAffinity {
            cookie_name: "c".into(),
            ..SessionAffinity::default()
        };
        assert_eq!(affinity.max_age(), 86400);
        assert_eq!(affinity.build_cookie("c=abc", 60), "c=abc; Max-Age=60");
        affinity = SessionAffinity {
            cookie_name: "c".into(),
            domain: Some("example.com".into()),
            http_only: Some(true),
            max_age: Some(100),
            partitioned: Some(true),
            path: Some("/".into()),
            same_site: Some("Lax".into()),
            secure: Some(true),
            ..SessionAffinity::default()
        };
        assert_eq!(affinity.max_age(), 100);
        assert_eq!(
            affinity.build_cookie("c=abc", affinity.max_age()),
            "c=abc; Max-Age=100; Domain=example.com; HttpOnly; Partitioned; Path=/; SameSite=Lax; Secure"
        );
    }

    #[test]
    fn webhook_type_unset_or_empty_is_rollout() {
        let hook = |t| CanaryWebhook {
            type_: t,
            ..CanaryWebhook::default()
        };
        assert_eq!(hook(None).hook_type(), HookType::Rollout);
        assert_eq!(hook(Some(HookType::Unset)).hook_type(), HookType::Rollout);
        assert_eq!(hook(Some(HookType::Event)).hook_type(), HookType::Event);
        for (t, s) in [
            (HookType::ConfirmTrafficIncrease, "confirm-traffic-increase"),
            (HookType::Unset, ""),
        ] {
            assert_eq!(t.as_str(), s);
            assert_eq!(serde_json::to_value(t).expect("json"), s);
        }
    }

    #[test]
    fn metric_interval_defaults_to_a_minute() {
        let m = |i: Option<&str>| CanaryMetric {
            interval: i.map(str::to_owned),
            ..CanaryMetric::default()
        };
        assert_eq!(m(None).interval(), "1m");
        assert_eq!(m(Some("")).interval(), "1m");
        assert_eq!(m(Some("30s")).interval(), "30s");
    }

    #[test]
    fn whole_floats_are_written_without_a_fraction() {
        let range = CanaryThresholdRange {
            min: Some(99.0),
            max: Some(0.5),
        };
        assert_eq!(
            serde_json::to_string(&range).expect("json"),
            r#"{"min":99,"max":0.5}"#
        );
    }

    #[test]
    fn cross_namespace_references_default_to_the_canarys_namespace() {
        let mut r = CrossNamespaceObjectReference {
            name: "t".into(),
            ..Default::default()
        };
        assert_eq!(r.namespace_or("apps"), "apps");
        r.namespace = Some(String::new());
        assert_eq!(r.namespace_or("apps"), "apps");
        r.namespace = Some("istio-system".into());
        assert_eq!(r.namespace_or("apps"), "istio-system");
    }
}
