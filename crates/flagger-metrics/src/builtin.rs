//! The builtin checks `request-success-rate` and `request-duration`: which observer (query set) a canary
//! uses, and the exact PromQL of Flagger 1.44's observers (`pkg/metrics/observers/*.go`).

use flagger_api::Canary;

use crate::template::{MetricModel, RenderError, render};

/// Appended to the metrics provider key when the target is a (non-Knative) Kubernetes Service.
pub const SERVICE_SUFFIX: &str = ":service";

/// A builtin metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuiltinMetric {
    /// `request-success-rate`: percentage (0–100) of non-5xx responses.
    SuccessRate,
    /// `request-duration`: response time in milliseconds (p99, or the average for nginx and skipper).
    Duration,
}

impl BuiltinMetric {
    /// The metric named `name`, if it is builtin.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "request-success-rate" => Some(Self::SuccessRate),
            "request-duration" => Some(Self::Duration),
            _ => None,
        }
    }

    /// The metric's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::SuccessRate => "request-success-rate",
            Self::Duration => "request-duration",
        }
    }
}

/// A set of builtin queries, one per mesh or ingress (Flagger's observers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Observer {
    /// Istio's `istio_requests_total` / `istio_request_duration_milliseconds` (also every unknown key).
    Istio,
    /// Linkerd's `response_total` / `response_latency_ms`.
    Linkerd,
    /// App Mesh: envoy cluster stats selected by pod name.
    AppMesh,
    /// Contour: envoy cluster stats of `<namespace>_<service>-canary_<port>`.
    Contour,
    /// Gloo Edge: envoy cluster stats of the canary upstream.
    Gloo,
    /// ingress-nginx controller metrics of the canary ingress.
    Nginx,
    /// `kubernetes` and Gateway API: the app's own `http_request_duration_seconds` (seconds).
    Http,
    /// Skipper route metrics.
    Skipper,
    /// Traefik service metrics (seconds).
    Traefik,
    /// Open Service Mesh `osm_request_total` / `osm_request_duration_ms`.
    Osm,
    /// Kuma: envoy cluster stats with Kuma's `service` label.
    Kuma,
    /// Apache APISIX `apisix_http_status` / `apisix_http_latency`.
    Apisix,
    /// Knative: envoy cluster stats of `<namespace>/<route>`.
    Knative,
}

impl Observer {
    /// Every observer.
    pub const ALL: [Self; 13] = [
        Self::Istio,
        Self::Linkerd,
        Self::AppMesh,
        Self::Contour,
        Self::Gloo,
        Self::Nginx,
        Self::Http,
        Self::Skipper,
        Self::Traefik,
        Self::Osm,
        Self::Kuma,
        Self::Apisix,
        Self::Knative,
    ];

    /// Flagger's observer factory: prefix `appmesh`, `linkerd`, `istio`, `contour`, prefix `gloo`, `nginx`,
    /// `kubernetes` or prefix `gatewayapi`, `skipper`, `traefik`, `osm`, `kuma`, `apisix`, `knative`;
    /// anything else (`smi:*`, `crossover`, most `<x>:service` keys) gets Istio's queries.
    pub fn for_key(key: &str) -> Self {
        match key {
            k if k.starts_with("appmesh") => Self::AppMesh,
            "linkerd" => Self::Linkerd,
            "istio" => Self::Istio,
            "contour" => Self::Contour,
            k if k.starts_with("gloo") => Self::Gloo,
            "nginx" => Self::Nginx,
            k if k == "kubernetes" || k.starts_with("gatewayapi") => Self::Http,
            "skipper" => Self::Skipper,
            "traefik" => Self::Traefik,
            "osm" => Self::Osm,
            "kuma" => Self::Kuma,
            "apisix" => Self::Apisix,
            "knative" => Self::Knative,
            _ => Self::Istio,
        }
    }

    /// Flagger's query template (before rendering and whitespace collapsing).
    pub fn template(self, metric: BuiltinMetric) -> String {
        let (success, duration) = match self {
            Self::Istio => (ISTIO_SUCCESS, ISTIO_DURATION),
            Self::Linkerd => (LINKERD_SUCCESS, LINKERD_DURATION),
            Self::AppMesh => (APPMESH_SUCCESS, APPMESH_DURATION),
            Self::Contour => (CONTOUR_SUCCESS, CONTOUR_DURATION),
            Self::Gloo => (GLOO_SUCCESS, GLOO_DURATION),
            Self::Nginx => (NGINX_SUCCESS, NGINX_DURATION),
            Self::Http => (HTTP_SUCCESS, HTTP_DURATION),
            Self::Skipper => (SKIPPER_SUCCESS, SKIPPER_DURATION),
            Self::Traefik => (TRAEFIK_SUCCESS, TRAEFIK_DURATION),
            Self::Osm => (OSM_SUCCESS, OSM_DURATION),
            Self::Kuma => (KUMA_SUCCESS, KUMA_DURATION),
            Self::Apisix => (APISIX_SUCCESS, APISIX_DURATION),
            Self::Knative => (KNATIVE_SUCCESS, KNATIVE_DURATION),
        };
        let body = match metric {
            BuiltinMetric::SuccessRate => success,
            BuiltinMetric::Duration => duration,
        };
        if self == Self::Skipper {
            format!("{SKIPPER_ROUTE}{body}")
        } else {
            body.to_owned()
        }
    }

    /// The query sent to Prometheus: the template rendered with `model` (for Skipper, with every non-word
    /// character of the names replaced by `_`, as Skipper names its routes) and whitespace collapsed.
    pub fn query(self, metric: BuiltinMetric, model: &MetricModel) -> Result<String, RenderError> {
        let rendered = if self == Self::Skipper {
            render(&self.template(metric), &skipper_model(model))?
        } else {
            render(&self.template(metric), model)?
        };
        Ok(collapse_whitespace(&rendered))
    }

    /// A `request-duration` query result as whole milliseconds, as Flagger converts it: truncated toward zero
    /// (`time.Duration(int64(v)) * time.Millisecond`); the `kubernetes`/Gateway API queries return seconds
    /// and are multiplied by 1000 first.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "Go's float-to-int64 conversion truncates too"
    )]
    pub fn duration_millis(self, value: f64) -> i64 {
        match self {
            Self::Http => (value * 1000.0) as i64,
            _ => value as i64,
        }
    }
}

/// The metrics provider key of a canary, Flagger's `runBuiltinMetricChecks`: `-mesh-provider` (or
/// `crossover` when it contains "crossover"); `spec.provider` when set, except that a `-mesh-provider`
/// containing "linkerd" forces `linkerd`; then `:service` when the target is a non-Knative Service.
pub fn metrics_provider_key(mesh_provider: &str, canary: &Canary) -> String {
    let mut key = if mesh_provider.contains("crossover") {
        "crossover".to_owned()
    } else {
        mesh_provider.to_owned()
    };
    if let Some(provider) = canary.spec.provider.as_deref().filter(|p| !p.is_empty()) {
        key = if mesh_provider.contains("linkerd") {
            "linkerd".to_owned()
        } else {
            provider.to_owned()
        };
    }
    let target = &canary.spec.target_ref;
    if target.kind == "Service" && !target.is_knative_service() {
        key.push_str(SERVICE_SUFFIX);
    }
    key
}

/// Replaces runs of whitespace with one space, as Flagger's Prometheus provider does before sending a query
/// (Go's `\s+`: space, tab, newline, form feed, carriage return).
pub fn collapse_whitespace(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut in_space = false;
    for c in query.chars() {
        if matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r') {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

fn skipper_model(model: &MetricModel) -> MetricModel {
    let encode = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    MetricModel {
        name: encode(&model.name),
        namespace: encode(&model.namespace),
        target: encode(&model.target),
        service: encode(&model.service),
        ingress: encode(&model.ingress),
        ..model.clone()
    }
}

// Flagger 1.44's templates with runs of whitespace collapsed to one space (what its Prometheus provider
// sends); the tokens are unchanged.

const ISTIO_SUCCESS: &str = r#" sum( rate( istio_requests_total{ reporter="destination", destination_workload_namespace="{{ namespace }}", destination_workload=~"{{ target }}", response_code!~"5.*" }[{{ interval }}] ) ) / sum( rate( istio_requests_total{ reporter="destination", destination_workload_namespace="{{ namespace }}", destination_workload=~"{{ target }}" }[{{ interval }}] ) ) * 100"#;
const ISTIO_DURATION: &str = r#" histogram_quantile( 0.99, sum( rate( istio_request_duration_milliseconds_bucket{ reporter="destination", destination_workload_namespace="{{ namespace }}", destination_workload=~"{{ target }}" }[{{ interval }}] ) ) by (le) )"#;
const LINKERD_SUCCESS: &str = r#" sum( rate( response_total{ namespace="{{ namespace }}", deployment=~"{{ target }}", classification!="failure", direction="inbound" }[{{ interval }}] ) ) / sum( rate( response_total{ namespace="{{ namespace }}", deployment=~"{{ target }}", direction="inbound" }[{{ interval }}] ) ) * 100"#;
const LINKERD_DURATION: &str = r#" histogram_quantile( 0.99, sum( rate( response_latency_ms_bucket{ namespace="{{ namespace }}", deployment=~"{{ target }}", direction="inbound" }[{{ interval }}] ) ) by (le) )"#;
const APPMESH_SUCCESS: &str = r#" sum( rate( envoy_cluster_upstream_rq{ kubernetes_namespace="{{ namespace }}", kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)", envoy_response_code!~"5.*" }[{{ interval }}] ) ) / sum( rate( envoy_cluster_upstream_rq{ kubernetes_namespace="{{ namespace }}", kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[{{ interval }}] ) ) * 100"#;
const APPMESH_DURATION: &str = r#" histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ kubernetes_namespace="{{ namespace }}", kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[{{ interval }}] ) ) by (le) )"#;
const CONTOUR_SUCCESS: &str = r#" sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+", envoy_response_code!~"5.*" }[{{ interval }}] ) ) / sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+", }[{{ interval }}] ) ) * 100"#;
const CONTOUR_DURATION: &str = r#" histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+", }[{{ interval }}] ) ) by (le) )"#;
const GLOO_SUCCESS: &str = r#" sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+", envoy_response_code!~"5.*" }[{{ interval }}] ) ) / sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+", }[{{ interval }}] ) ) * 100"#;
const GLOO_DURATION: &str = r#" histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+", }[{{ interval }}] ) ) by (le) )"#;
const KUMA_SUCCESS: &str = r#" sum( rate( envoy_cluster_upstream_rq{ service=~"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+", envoy_response_code!~"5.*" }[{{ interval }}] ) ) / sum( rate( envoy_cluster_upstream_rq{ service=~"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+", }[{{ interval }}] ) ) * 100"#;
const KUMA_DURATION: &str = r#" histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ service=~"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+", }[{{ interval }}] ) ) by (le) )"#;
const KNATIVE_SUCCESS: &str = r#" sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"{{ namespace }}/{{ route }}", envoy_response_code!~"5.*" }[{{ interval }}] ) ) / sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"{{ namespace }}/{{ route }}", }[{{ interval }}] ) ) * 100"#;
const KNATIVE_DURATION: &str = r#" histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ envoy_cluster_name=~"{{ namespace }}/{{ route }}", }[{{ interval }}] ) ) by (le) )"#;
const NGINX_SUCCESS: &str = r#" sum( rate( nginx_ingress_controller_requests{ namespace="{{ namespace }}", ingress="{{ ingress }}", canary!="", status!~"5.*" }[{{ interval }}] ) ) / sum( rate( nginx_ingress_controller_requests{ namespace="{{ namespace }}", ingress="{{ ingress }}", canary!="" }[{{ interval }}] ) ) * 100"#;
const NGINX_DURATION: &str = r#" sum( rate( nginx_ingress_controller_response_duration_seconds_sum{ namespace="{{ namespace }}", ingress="{{ ingress }}", canary!="" }[{{ interval }}] ) ) / sum( rate( nginx_ingress_controller_response_duration_seconds_count{ namespace="{{ namespace }}", ingress="{{ ingress }}", canary!="" }[{{ interval }}] ) ) * 1000"#;
const HTTP_SUCCESS: &str = r#" sum( rate( http_request_duration_seconds_count{ kubernetes_namespace="{{ namespace }}", kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)", status!~"5.*" }[{{ interval }}] ) ) / sum( rate( http_request_duration_seconds_count{ kubernetes_namespace="{{ namespace }}", kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[{{ interval }}] ) ) * 100"#;
const HTTP_DURATION: &str = r#" histogram_quantile( 0.99, sum( rate( http_request_duration_seconds_bucket{ kubernetes_namespace="{{ namespace }}", kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[{{ interval }}] ) ) by (le) )"#;
const OSM_SUCCESS: &str = r#" sum( rate( osm_request_total{ destination_namespace="{{ namespace }}", destination_kind="Deployment", destination_name="{{ target }}", response_code!~"5.*" }[{{ interval }}] ) ) / sum( rate( osm_request_total{ destination_namespace="{{ namespace }}", destination_kind="Deployment", destination_name="{{ target }}" }[{{ interval }}] ) ) * 100"#;
const OSM_DURATION: &str = r#" histogram_quantile( 0.99, sum( rate( osm_request_duration_ms_bucket{ destination_namespace="{{ namespace }}", destination_kind="Deployment", destination_name="{{ target }}" }[{{ interval }}] ) ) by (le) )"#;
const TRAEFIK_SUCCESS: &str = r#" sum( rate( traefik_service_request_duration_seconds_bucket{ service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd", code!~"5..", le="+Inf" }[{{ interval }}] ) ) / sum( rate( traefik_service_request_duration_seconds_bucket{ service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd", le="+Inf" }[{{ interval }}] ) ) * 100"#;
const TRAEFIK_DURATION: &str = r#" histogram_quantile( 0.99, sum( rate( traefik_service_request_duration_seconds_bucket{ service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd" }[{{ interval }}] ) ) by (le) ) * 1000"#;
const APISIX_SUCCESS: &str = r#" sum( rate( apisix_http_status{ route=~"{{ namespace }}_{{ route }}-{{ target }}-canary_.+", code!~"5.." }[{{ interval }}] ) ) / sum( rate( apisix_http_status{ route=~"{{ namespace }}_{{ route }}-{{ target }}-canary_.+" }[{{ interval }}] ) ) * 100"#;
const APISIX_DURATION: &str = r#" histogram_quantile( 0.99, sum( rate( apisix_http_latency_bucket{ type=~"request", route=~"{{ namespace }}_{{ route }}-{{ target }}-canary_.+" }[{{ interval }}] ) ) by (le) )"#;
const SKIPPER_SUCCESS: &str = r#" sum(rate(skipper_response_duration_seconds_bucket{route=~"{{ $route }}",code!~"5..",le="+Inf"}[{{ interval }}])) / sum(rate(skipper_response_duration_seconds_bucket{route=~"{{ $route }}",le="+Inf"}[{{ interval }}])) * 100"#;
const SKIPPER_DURATION: &str = r#" sum(rate(skipper_serve_route_duration_seconds_sum{route=~"{{ $route }}"}[{{ interval }}])) / sum(rate(skipper_serve_route_duration_seconds_count{route=~"{{ $route }}"}[{{ interval }}])) * 1000"#;
const SKIPPER_ROUTE: &str =
    r#"{{- $route := printf "kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?" namespace ingress service }}"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> MetricModel {
        MetricModel {
            name: "podinfo-canary".into(),
            namespace: "test".into(),
            target: "podinfo".into(),
            service: "podinfo-svc".into(),
            ingress: "podinfo-ing".into(),
            route: "podinfo-route".into(),
            interval: "1m".into(),
            variables: Default::default(),
        }
    }

    #[test]
    fn every_builtin_query_renders_exactly_as_flagger_sends_it() {
        assert_eq!(EXPECTED.len(), Observer::ALL.len() * 2);
        for (observer, metric, expected) in EXPECTED {
            assert_eq!(
                observer.query(*metric, &model()).unwrap(),
                *expected,
                "{observer:?} {metric:?}"
            );
        }
    }

    #[test]
    fn skipper_encodes_non_word_characters_in_names() {
        let m = MetricModel {
            namespace: "my.ns".into(),
            ingress: "web-ingress".into(),
            service: "web svc".into(),
            ..model()
        };
        let q = Observer::Skipper.query(BuiltinMetric::Duration, &m).unwrap();
        assert!(
            q.contains(r#"route=~"kube(ew)?_my_ns__web_ingress_canary__.*__web_svc_canary(_[0-9]+)?""#),
            "{q}"
        );
        assert!(q.ends_with("* 1000"), "{q}");
    }

    #[test]
    fn observer_selection_follows_flaggers_factory() {
        for (key, observer) in [
            ("istio", Observer::Istio),
            ("linkerd", Observer::Linkerd),
            ("appmesh", Observer::AppMesh),
            ("appmesh:v1beta2", Observer::AppMesh),
            ("appmesh:v1beta2:service", Observer::AppMesh),
            ("contour", Observer::Contour),
            ("gloo", Observer::Gloo),
            ("gloo:service", Observer::Gloo),
            ("nginx", Observer::Nginx),
            ("kubernetes", Observer::Http),
            ("gatewayapi:v1", Observer::Http),
            ("gatewayapi:v1beta1:service", Observer::Http),
            ("skipper", Observer::Skipper),
            ("traefik", Observer::Traefik),
            ("osm", Observer::Osm),
            ("kuma", Observer::Kuma),
            ("apisix", Observer::Apisix),
            ("knative", Observer::Knative),
            // Everything else falls back to Istio's queries, as in Flagger.
            ("kubernetes:service", Observer::Istio),
            ("linkerd:service", Observer::Istio),
            ("contour:service", Observer::Istio),
            ("smi:v1alpha3:linkerd", Observer::Istio),
            ("crossover", Observer::Istio),
            ("", Observer::Istio),
        ] {
            assert_eq!(Observer::for_key(key), observer, "{key:?}");
        }
    }

    fn canary(provider: Option<&str>, kind: &str, api_version: &str) -> Canary {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "provider": provider,
                "targetRef": {"apiVersion": api_version, "kind": kind, "name": "podinfo"},
                "service": {"port": 80}
            }
        }))
        .unwrap()
    }

    #[test]
    fn metrics_provider_key_rules() {
        let deploy = |p| canary(p, "Deployment", "apps/v1");
        assert_eq!(metrics_provider_key("istio", &deploy(None)), "istio");
        assert_eq!(metrics_provider_key("istio", &deploy(Some("nginx"))), "nginx");
        assert_eq!(metrics_provider_key("istio", &deploy(Some(""))), "istio");
        // -mesh-provider linkerd overrides the canary's provider (only when one is set).
        assert_eq!(metrics_provider_key("linkerd", &deploy(Some("nginx"))), "linkerd");
        assert_eq!(
            metrics_provider_key("smi:linkerd", &deploy(Some("nginx"))),
            "linkerd"
        );
        assert_eq!(metrics_provider_key("smi:crossover", &deploy(None)), "crossover");
        assert_eq!(
            metrics_provider_key("smi:crossover", &deploy(Some("contour"))),
            "contour"
        );
        // Service targets get `:service`, Knative Services do not.
        let svc = canary(Some("kubernetes"), "Service", "v1");
        assert_eq!(metrics_provider_key("istio", &svc), "kubernetes:service");
        assert_eq!(
            Observer::for_key(&metrics_provider_key("istio", &svc)),
            Observer::Istio
        );
        let ksvc = canary(Some("knative"), "Service", "serving.knative.dev/v1");
        assert_eq!(metrics_provider_key("istio", &ksvc), "knative");
    }

    #[test]
    fn duration_units() {
        assert_eq!(Observer::Istio.duration_millis(248.9), 248);
        assert_eq!(Observer::Nginx.duration_millis(110.99), 110);
        assert_eq!(Observer::Http.duration_millis(0.2485), 248);
        assert_eq!(Observer::Traefik.duration_millis(31.7), 31);
    }

    #[test]
    fn collapsing_matches_go_regexp_whitespace() {
        assert_eq!(collapse_whitespace("\n\ta \r\n b\x0cc  "), " a b c ");
        assert_eq!(collapse_whitespace("a\u{a0}b"), "a\u{a0}b");
    }

    /// Every rendered builtin query for the model of `model()`, generated from Flagger's observer sources with
    /// Go's whitespace collapsing and Skipper's name encoding applied.
    pub(super) const EXPECTED: &[(Observer, BuiltinMetric, &str)] = &[
        (
            Observer::Istio,
            BuiltinMetric::SuccessRate,
            r#" sum( rate( istio_requests_total{ reporter="destination", destination_workload_namespace="test", destination_workload=~"podinfo", response_code!~"5.*" }[1m] ) ) / sum( rate( istio_requests_total{ reporter="destination", destination_workload_namespace="test", destination_workload=~"podinfo" }[1m] ) ) * 100"#,
        ),
        (
            Observer::Istio,
            BuiltinMetric::Duration,
            r#" histogram_quantile( 0.99, sum( rate( istio_request_duration_milliseconds_bucket{ reporter="destination", destination_workload_namespace="test", destination_workload=~"podinfo" }[1m] ) ) by (le) )"#,
        ),
        (
            Observer::Linkerd,
            BuiltinMetric::SuccessRate,
            r#" sum( rate( response_total{ namespace="test", deployment=~"podinfo", classification!="failure", direction="inbound" }[1m] ) ) / sum( rate( response_total{ namespace="test", deployment=~"podinfo", direction="inbound" }[1m] ) ) * 100"#,
        ),
        (
            Observer::Linkerd,
            BuiltinMetric::Duration,
            r#" histogram_quantile( 0.99, sum( rate( response_latency_ms_bucket{ namespace="test", deployment=~"podinfo", direction="inbound" }[1m] ) ) by (le) )"#,
        ),
        (
            Observer::AppMesh,
            BuiltinMetric::SuccessRate,
            r#" sum( rate( envoy_cluster_upstream_rq{ kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)", envoy_response_code!~"5.*" }[1m] ) ) / sum( rate( envoy_cluster_upstream_rq{ kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[1m] ) ) * 100"#,
        ),
        (
            Observer::AppMesh,
            BuiltinMetric::Duration,
            r#" histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[1m] ) ) by (le) )"#,
        ),
        (
            Observer::Contour,
            BuiltinMetric::SuccessRate,
            r#" sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"test_podinfo-svc-canary_[0-9a-zA-Z-]+", envoy_response_code!~"5.*" }[1m] ) ) / sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"test_podinfo-svc-canary_[0-9a-zA-Z-]+", }[1m] ) ) * 100"#,
        ),
        (
            Observer::Contour,
            BuiltinMetric::Duration,
            r#" histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ envoy_cluster_name=~"test_podinfo-svc-canary_[0-9a-zA-Z-]+", }[1m] ) ) by (le) )"#,
        ),
        (
            Observer::Gloo,
            BuiltinMetric::SuccessRate,
            r#" sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"test-podinfo-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+", envoy_response_code!~"5.*" }[1m] ) ) / sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"test-podinfo-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+", }[1m] ) ) * 100"#,
        ),
        (
            Observer::Gloo,
            BuiltinMetric::Duration,
            r#" histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ envoy_cluster_name=~"test-podinfo-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+", }[1m] ) ) by (le) )"#,
        ),
        (
            Observer::Kuma,
            BuiltinMetric::SuccessRate,
            r#" sum( rate( envoy_cluster_upstream_rq{ service=~"podinfo-canary_test_svc_[0-9a-zA-Z-]+", envoy_response_code!~"5.*" }[1m] ) ) / sum( rate( envoy_cluster_upstream_rq{ service=~"podinfo-canary_test_svc_[0-9a-zA-Z-]+", }[1m] ) ) * 100"#,
        ),
        (
            Observer::Kuma,
            BuiltinMetric::Duration,
            r#" histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ service=~"podinfo-canary_test_svc_[0-9a-zA-Z-]+", }[1m] ) ) by (le) )"#,
        ),
        (
            Observer::Knative,
            BuiltinMetric::SuccessRate,
            r#" sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"test/podinfo-route", envoy_response_code!~"5.*" }[1m] ) ) / sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"test/podinfo-route", }[1m] ) ) * 100"#,
        ),
        (
            Observer::Knative,
            BuiltinMetric::Duration,
            r#" histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ envoy_cluster_name=~"test/podinfo-route", }[1m] ) ) by (le) )"#,
        ),
        (
            Observer::Nginx,
            BuiltinMetric::SuccessRate,
            r#" sum( rate( nginx_ingress_controller_requests{ namespace="test", ingress="podinfo-ing", canary!="", status!~"5.*" }[1m] ) ) / sum( rate( nginx_ingress_controller_requests{ namespace="test", ingress="podinfo-ing", canary!="" }[1m] ) ) * 100"#,
        ),
        (
            Observer::Nginx,
            BuiltinMetric::Duration,
            r#" sum( rate( nginx_ingress_controller_response_duration_seconds_sum{ namespace="test", ingress="podinfo-ing", canary!="" }[1m] ) ) / sum( rate( nginx_ingress_controller_response_duration_seconds_count{ namespace="test", ingress="podinfo-ing", canary!="" }[1m] ) ) * 1000"#,
        ),
        (
            Observer::Http,
            BuiltinMetric::SuccessRate,
            r#" sum( rate( http_request_duration_seconds_count{ kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)", status!~"5.*" }[1m] ) ) / sum( rate( http_request_duration_seconds_count{ kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[1m] ) ) * 100"#,
        ),
        (
            Observer::Http,
            BuiltinMetric::Duration,
            r#" histogram_quantile( 0.99, sum( rate( http_request_duration_seconds_bucket{ kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[1m] ) ) by (le) )"#,
        ),
        (
            Observer::Osm,
            BuiltinMetric::SuccessRate,
            r#" sum( rate( osm_request_total{ destination_namespace="test", destination_kind="Deployment", destination_name="podinfo", response_code!~"5.*" }[1m] ) ) / sum( rate( osm_request_total{ destination_namespace="test", destination_kind="Deployment", destination_name="podinfo" }[1m] ) ) * 100"#,
        ),
        (
            Observer::Osm,
            BuiltinMetric::Duration,
            r#" histogram_quantile( 0.99, sum( rate( osm_request_duration_ms_bucket{ destination_namespace="test", destination_kind="Deployment", destination_name="podinfo" }[1m] ) ) by (le) )"#,
        ),
        (
            Observer::Traefik,
            BuiltinMetric::SuccessRate,
            r#" sum( rate( traefik_service_request_duration_seconds_bucket{ service=~"test-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd", code!~"5..", le="+Inf" }[1m] ) ) / sum( rate( traefik_service_request_duration_seconds_bucket{ service=~"test-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd", le="+Inf" }[1m] ) ) * 100"#,
        ),
        (
            Observer::Traefik,
            BuiltinMetric::Duration,
            r#" histogram_quantile( 0.99, sum( rate( traefik_service_request_duration_seconds_bucket{ service=~"test-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd" }[1m] ) ) by (le) ) * 1000"#,
        ),
        (
            Observer::Apisix,
            BuiltinMetric::SuccessRate,
            r#" sum( rate( apisix_http_status{ route=~"test_podinfo-route-podinfo-canary_.+", code!~"5.." }[1m] ) ) / sum( rate( apisix_http_status{ route=~"test_podinfo-route-podinfo-canary_.+" }[1m] ) ) * 100"#,
        ),
        (
            Observer::Apisix,
            BuiltinMetric::Duration,
            r#" histogram_quantile( 0.99, sum( rate( apisix_http_latency_bucket{ type=~"request", route=~"test_podinfo-route-podinfo-canary_.+" }[1m] ) ) by (le) )"#,
        ),
        (
            Observer::Skipper,
            BuiltinMetric::SuccessRate,
            r#" sum(rate(skipper_response_duration_seconds_bucket{route=~"kube(ew)?_test__podinfo_ing_canary__.*__podinfo_svc_canary(_[0-9]+)?",code!~"5..",le="+Inf"}[1m])) / sum(rate(skipper_response_duration_seconds_bucket{route=~"kube(ew)?_test__podinfo_ing_canary__.*__podinfo_svc_canary(_[0-9]+)?",le="+Inf"}[1m])) * 100"#,
        ),
        (
            Observer::Skipper,
            BuiltinMetric::Duration,
            r#" sum(rate(skipper_serve_route_duration_seconds_sum{route=~"kube(ew)?_test__podinfo_ing_canary__.*__podinfo_svc_canary(_[0-9]+)?"}[1m])) / sum(rate(skipper_serve_route_duration_seconds_count{route=~"kube(ew)?_test__podinfo_ing_canary__.*__podinfo_svc_canary(_[0-9]+)?"}[1m])) * 1000"#,
        ),
    ];
}
