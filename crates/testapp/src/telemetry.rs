//! The metric shapes the app can export, one per mesh/ingress provider whose builtin Flagger queries read them.
//!
//! Each shape carries the metric names, label names and histogram buckets of the real exporter, with label values
//! taken from [`Labels`], so that Flagger's builtin `request-success-rate` and `request-duration` queries
//! (`pkg/metrics/observers/*.go`) select this app's series when rendered with the same namespace/target/etc.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::exposition::Family;

/// Which exporter the app imitates. Several can be enabled at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Telemetry {
    /// The app's own instrumentation as podinfo exposes it, with the `kubernetes_namespace` /
    /// `kubernetes_pod_name` labels that Flagger's Prometheus relabelling adds:
    /// `http_request_duration_seconds{kubernetes_namespace,kubernetes_pod_name,method,path,status}`.
    /// Read by the `kubernetes` and `gatewayapi` observers.
    Kubernetes,
    /// Istio's sidecar, `reporter="destination"`: `istio_requests_total`, `istio_request_duration_milliseconds`.
    Istio,
    /// Linkerd's proxy, `direction="inbound"`: `response_total`, `response_latency_ms`.
    Linkerd,
    /// Envoy cluster stats: `envoy_cluster_upstream_rq`, `envoy_cluster_upstream_rq_time` with
    /// `envoy_cluster_name` (contour, gloo), `kubernetes_namespace`/`kubernetes_pod_name` (appmesh) and, when
    /// configured, `service` (kuma).
    Envoy,
    /// ingress-nginx: `nginx_ingress_controller_requests`, `nginx_ingress_controller_response_duration_seconds`.
    Nginx,
}

impl Telemetry {
    pub const ALL: [Self; 5] = [
        Self::Kubernetes,
        Self::Istio,
        Self::Linkerd,
        Self::Envoy,
        Self::Nginx,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kubernetes => "kubernetes",
            Self::Istio => "istio",
            Self::Linkerd => "linkerd",
            Self::Envoy => "envoy",
            Self::Nginx => "nginx",
        }
    }
}

impl fmt::Display for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown telemetry shape {0:?}: expected kubernetes, istio, linkerd, envoy or nginx")]
pub struct UnknownTelemetry(String);

impl FromStr for Telemetry {
    type Err = UnknownTelemetry;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s.trim())
            .ok_or_else(|| UnknownTelemetry(s.to_string()))
    }
}

/// Label values identifying this app in its metrics: what Kubernetes objects it pretends to be part of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    /// Namespace of the workload (`{{ namespace }}` in the queries).
    pub namespace: String,
    /// Deployment name (`{{ target }}`): `podinfo` for the canary, `podinfo-primary` for the primary.
    pub workload: String,
    /// Pod name; must match `{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)` for the kubernetes/appmesh queries.
    pub pod: String,
    /// Kubernetes Service name (istio `destination_service_name`, nginx `service`).
    pub service: String,
    /// Ingress name (`{{ ingress }}`, nginx).
    pub ingress: String,
    /// nginx `canary` label: the canary upstream's name for requests the canary ingress routed here
    /// (e.g. `test-podinfo-canary-80`), empty for the primary. Flagger's query selects `canary!=""`.
    pub nginx_canary: String,
    /// Envoy `envoy_cluster_name`, e.g. `test_podinfo-canary_80` (contour) or
    /// `test-podinfo-canaryupstream-abc_xyz` (gloo).
    pub envoy_cluster: String,
    /// Kuma's `service` label on envoy metrics, e.g. `podinfo-canary_test_svc_80`; not exported when `None`.
    pub kuma_service: Option<String>,
}

impl Labels {
    /// Defaults derived from a namespace and a deployment name: a pod name of the ReplicaSet form
    /// `<workload>-<hash>-<suffix>`, service and ingress named like the workload, contour's cluster name.
    pub fn new(namespace: &str, workload: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            workload: workload.to_string(),
            pod: format!("{workload}-{}-{}", random_alnum(10), random_alnum(5)),
            service: workload.to_string(),
            ingress: workload.to_string(),
            nginx_canary: String::new(),
            envoy_cluster: format!("{namespace}_{workload}_80"),
            kuma_service: None,
        }
    }
}

impl Default for Labels {
    fn default() -> Self {
        Self::new("default", "testapp")
    }
}

fn random_alnum(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// Prometheus' default buckets (seconds), used by podinfo and ingress-nginx.
const DEFAULT_SECONDS_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Istio's and Envoy's default duration buckets (milliseconds).
const ENVOY_MS_BUCKETS: &[f64] = &[
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0,
    300000.0, 600000.0, 1800000.0, 3600000.0,
];
/// Linkerd proxy latency buckets (milliseconds).
const LINKERD_MS_BUCKETS: &[f64] = &[
    1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 100.0, 200.0, 300.0, 400.0, 500.0, 1000.0, 2000.0,
    3000.0, 4000.0, 5000.0, 10000.0, 20000.0, 30000.0, 40000.0, 50000.0,
];

/// Label values of one request: `(labels, version, status code)`.
type LabelFn = fn(&Labels, &str, u16) -> Vec<String>;

/// A family that times requests and, unless the histogram's `_count` serves, a family that counts them.
struct Shape {
    requests: Option<(Family, LabelFn)>,
    duration: Family,
    duration_labels: LabelFn,
    /// Seconds (false) or milliseconds (true) in `duration`.
    millis: bool,
}

/// Records requests in the enabled shapes and renders `/metrics`.
pub struct Recorder {
    labels: Labels,
    version: String,
    /// `testapp_requests_total{version,code}`: always exported, for counting what this app received.
    total: Family,
    shapes: Vec<Shape>,
}

impl Recorder {
    pub fn new(shapes: &[Telemetry], labels: Labels, version: String) -> Self {
        let mut enabled = shapes.to_vec();
        enabled.sort();
        enabled.dedup();
        Self {
            total: Family::counter(
                "testapp_requests_total",
                "Requests answered by the test app.",
                &["version", "code"],
            ),
            shapes: enabled
                .into_iter()
                .map(|t| shape(t, labels.kuma_service.is_some()))
                .collect(),
            labels,
            version,
        }
    }

    /// Records one answered request.
    pub fn record(&self, status: u16, elapsed: Duration) {
        self.total
            .observe(vec![self.version.clone(), status.to_string()], 1.0);
        for shape in &self.shapes {
            let value = if shape.millis {
                elapsed.as_secs_f64() * 1e3
            } else {
                elapsed.as_secs_f64()
            };
            if let Some((requests, labels)) = &shape.requests {
                requests.observe(labels(&self.labels, &self.version, status), 1.0);
            }
            shape.duration.observe(
                (shape.duration_labels)(&self.labels, &self.version, status),
                value,
            );
        }
    }

    /// The text exposition of every family.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.total.encode(&mut out);
        for shape in &self.shapes {
            if let Some((requests, _)) = &shape.requests {
                requests.encode(&mut out);
            }
            shape.duration.encode(&mut out);
        }
        out
    }
}

fn shape(t: Telemetry, kuma: bool) -> Shape {
    match t {
        Telemetry::Kubernetes => {
            const NAMES: &[&str] = &[
                "kubernetes_namespace",
                "kubernetes_pod_name",
                "method",
                "path",
                "status",
            ];
            fn labels(l: &Labels, _: &str, status: u16) -> Vec<String> {
                let (ns, pod) = (l.namespace.clone(), l.pod.clone());
                vec![ns, pod, "GET".into(), "/".into(), status.to_string()]
            }
            // One histogram; its `_count` is the request counter the success-rate query reads.
            let duration = Family::histogram(
                "http_request_duration_seconds",
                "Duration of HTTP requests in seconds.",
                NAMES,
                DEFAULT_SECONDS_BUCKETS,
            );
            Shape {
                requests: None,
                duration,
                duration_labels: labels,
                millis: false,
            }
        }
        Telemetry::Istio => {
            const NAMES: &[&str] = &[
                "reporter",
                "source_workload",
                "source_workload_namespace",
                "destination_workload",
                "destination_workload_namespace",
                "destination_service",
                "destination_service_name",
                "destination_service_namespace",
                "destination_version",
                "request_protocol",
                "response_code",
                "response_flags",
                "connection_security_policy",
            ];
            fn labels(l: &Labels, version: &str, status: u16) -> Vec<String> {
                vec![
                    "destination".into(),
                    "unknown".into(),
                    "unknown".into(),
                    l.workload.clone(),
                    l.namespace.clone(),
                    format!("{}.{}.svc.cluster.local", l.service, l.namespace),
                    l.service.clone(),
                    l.namespace.clone(),
                    version.to_string(),
                    "http".into(),
                    status.to_string(),
                    "-".into(),
                    "mutual_tls".into(),
                ]
            }
            Shape {
                requests: Some((
                    Family::counter("istio_requests_total", "Requests seen by the istio proxy.", NAMES),
                    labels,
                )),
                duration: Family::histogram(
                    "istio_request_duration_milliseconds",
                    "Request duration in milliseconds.",
                    NAMES,
                    ENVOY_MS_BUCKETS,
                ),
                millis: true,
                duration_labels: labels,
            }
        }
        Telemetry::Linkerd => {
            const COUNT: &[&str] = &[
                "direction",
                "namespace",
                "deployment",
                "pod",
                "tls",
                "status_code",
                "classification",
            ];
            const LATENCY: &[&str] = &[
                "direction",
                "namespace",
                "deployment",
                "pod",
                "tls",
                "status_code",
            ];
            fn latency(l: &Labels, _: &str, status: u16) -> Vec<String> {
                let common = [l.namespace.clone(), l.workload.clone(), l.pod.clone()];
                let mut v = vec!["inbound".to_string()];
                v.extend(common);
                v.extend(["true".to_string(), status.to_string()]);
                v
            }
            fn count(l: &Labels, version: &str, status: u16) -> Vec<String> {
                let mut v = latency(l, version, status);
                v.push(if status >= 500 { "failure" } else { "success" }.to_string());
                v
            }
            Shape {
                requests: Some((
                    Family::counter("response_total", "Responses by the linkerd proxy.", COUNT),
                    count,
                )),
                duration: Family::histogram(
                    "response_latency_ms",
                    "Response latency in milliseconds.",
                    LATENCY,
                    LINKERD_MS_BUCKETS,
                ),
                millis: true,
                duration_labels: latency,
            }
        }
        Telemetry::Envoy => {
            fn base(l: &Labels) -> Vec<String> {
                let mut v = vec![l.envoy_cluster.clone(), l.namespace.clone(), l.pod.clone()];
                v.extend(l.kuma_service.clone());
                v
            }
            fn count(l: &Labels, _: &str, status: u16) -> Vec<String> {
                let mut v = base(l);
                v.push(status.to_string());
                v
            }
            let mut names = vec![
                "envoy_cluster_name",
                "kubernetes_namespace",
                "kubernetes_pod_name",
            ];
            if kuma {
                names.push("service");
            }
            let duration = Family::histogram(
                "envoy_cluster_upstream_rq_time",
                "Upstream request time in milliseconds.",
                &names,
                ENVOY_MS_BUCKETS,
            );
            names.push("envoy_response_code");
            Shape {
                requests: Some((
                    Family::counter("envoy_cluster_upstream_rq", "Upstream requests.", &names),
                    count,
                )),
                duration,
                millis: true,
                duration_labels: |l, _, _| base(l),
            }
        }
        Telemetry::Nginx => {
            const NAMES: &[&str] = &[
                "canary",
                "controller_class",
                "controller_namespace",
                "controller_pod",
                "host",
                "ingress",
                "method",
                "namespace",
                "path",
                "service",
                "status",
            ];
            fn labels(l: &Labels, _: &str, status: u16) -> Vec<String> {
                vec![
                    l.nginx_canary.clone(),
                    "k8s.io/ingress-nginx".into(),
                    "ingress-nginx".into(),
                    "ingress-nginx-controller-0".into(),
                    format!("{}.example.com", l.ingress),
                    l.ingress.clone(),
                    "GET".into(),
                    l.namespace.clone(),
                    "/".into(),
                    l.service.clone(),
                    status.to_string(),
                ]
            }
            Shape {
                requests: Some((
                    Family::counter(
                        "nginx_ingress_controller_requests",
                        "The total number of client requests.",
                        NAMES,
                    ),
                    labels,
                )),
                duration: Family::histogram(
                    "nginx_ingress_controller_response_duration_seconds",
                    "The time spent on receiving the response from the upstream server.",
                    NAMES,
                    DEFAULT_SECONDS_BUCKETS,
                ),
                millis: false,
                duration_labels: labels,
            }
        }
    }
}
