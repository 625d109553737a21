//! Command-line flags (each also readable from a `TESTAPP_*` environment variable).

use std::net::SocketAddr;

use clap::Parser;

use crate::{Config, ErrorMode, Labels, Latency, Telemetry};

/// The application under release in flagger-rs tests.
///
/// Prints the bound address (e.g. `127.0.0.1:40123`) as the first line on stdout, then serves until SIGINT or
/// SIGTERM. Application requests go to any path other than /healthz, /metrics, /stats and /admin/config.
#[derive(Debug, Parser)]
#[command(name = "testapp", version)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "TESTAPP_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// Version reported in responses, in the x-testapp-version header and in metrics.
    #[arg(long = "app-version", env = "TESTAPP_VERSION", default_value = "1.0.0")]
    pub app_version: String,

    /// Fraction of application requests answered 500 (0.0 to 1.0).
    #[arg(long, env = "TESTAPP_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,

    /// How errors are spread: `even` fails exactly every 1/rate-th request, `random` fails each request
    /// independently.
    #[arg(long, env = "TESTAPP_ERROR_MODE", value_enum, default_value_t = ErrorMode::Even)]
    pub error_mode: ErrorMode,

    /// Added latency per request: `none`; fixed `60ms` (units us, ms, s); uniform `10ms..100ms`; or
    /// percentiles `p50=10ms,p90=40ms,p99=200ms` (linear between points, clamped outside them).
    #[arg(long, env = "TESTAPP_LATENCY", default_value = "none")]
    pub latency: Latency,

    /// Metric shapes to export, repeatable or comma-separated: kubernetes (http_request_duration_seconds),
    /// istio (istio_requests_total, istio_request_duration_milliseconds), linkerd (response_total,
    /// response_latency_ms), envoy (envoy_cluster_upstream_rq[_time]), nginx
    /// (nginx_ingress_controller_requests, nginx_ingress_controller_response_duration_seconds), or all.
    #[arg(long, env = "TESTAPP_TELEMETRY", value_delimiter = ',', default_value = "kubernetes",
          value_parser = parse_telemetry)]
    pub telemetry: Vec<TelemetryArg>,

    /// Namespace label value (`{{ namespace }}` in Flagger's queries).
    #[arg(long, env = "TESTAPP_NAMESPACE", default_value = "default")]
    pub namespace: String,

    /// Deployment name (`{{ target }}`): e.g. `podinfo` for the canary, `podinfo-primary` for the primary.
    #[arg(long, env = "TESTAPP_WORKLOAD", default_value = "testapp")]
    pub workload: String,

    /// Pod name [default: <workload>-<10 chars>-<5 chars>, matching Flagger's pod-name regex].
    #[arg(long, env = "TESTAPP_POD")]
    pub pod: Option<String>,

    /// Service name [default: the workload].
    #[arg(long, env = "TESTAPP_SERVICE")]
    pub service: Option<String>,

    /// Ingress name for the nginx shape [default: the workload].
    #[arg(long, env = "TESTAPP_INGRESS")]
    pub ingress: Option<String>,

    /// nginx `canary` label: the canary upstream name (e.g. `test-podinfo-canary-80`) when this app is the
    /// canary behind a canary ingress; empty for the primary [default: empty].
    #[arg(long, env = "TESTAPP_NGINX_CANARY", default_value = "")]
    pub nginx_canary: String,

    /// envoy_cluster_name, e.g. `test_podinfo-canary_80` (contour) or `test-podinfo-canaryupstream-x_y` (gloo)
    /// [default: <namespace>_<workload>_80].
    #[arg(long, env = "TESTAPP_ENVOY_CLUSTER")]
    pub envoy_cluster: Option<String>,

    /// Kuma `service` label on envoy metrics, e.g. `podinfo-canary_test_svc_80` [default: not exported].
    #[arg(long, env = "TESTAPP_KUMA_SERVICE")]
    pub kuma_service: Option<String>,
}

/// One `--telemetry` value: a shape, or `all`.
#[derive(Debug, Clone)]
pub struct TelemetryArg(Vec<Telemetry>);

fn parse_telemetry(s: &str) -> Result<TelemetryArg, String> {
    if s.trim() == "all" {
        return Ok(TelemetryArg(Telemetry::ALL.to_vec()));
    }
    s.parse()
        .map(|t| TelemetryArg(vec![t]))
        .map_err(|e: crate::telemetry::UnknownTelemetry| e.to_string())
}

impl Args {
    pub fn into_config(self) -> Config {
        let defaults = Labels::new(&self.namespace, &self.workload);
        let labels = Labels {
            pod: self.pod.unwrap_or(defaults.pod),
            service: self.service.unwrap_or(defaults.service),
            ingress: self.ingress.unwrap_or(defaults.ingress),
            nginx_canary: self.nginx_canary,
            envoy_cluster: self.envoy_cluster.unwrap_or(defaults.envoy_cluster),
            kuma_service: self.kuma_service,
            namespace: self.namespace,
            workload: self.workload,
        };
        Config {
            listen: self.listen,
            version: self.app_version,
            error_rate: self.error_rate,
            error_mode: self.error_mode,
            latency: self.latency,
            telemetry: self.telemetry.into_iter().flat_map(|t| t.0).collect(),
            labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_build_a_config() {
        let args = Args::try_parse_from([
            "testapp",
            "--telemetry",
            "istio,linkerd",
            "--telemetry=nginx",
            "--namespace=test",
            "--workload=podinfo",
            "--error-rate=0.1",
            "--latency=10ms..20ms",
        ])
        .unwrap();
        let c = args.into_config();
        assert_eq!(
            c.telemetry,
            vec![Telemetry::Istio, Telemetry::Linkerd, Telemetry::Nginx]
        );
        assert_eq!(c.labels.envoy_cluster, "test_podinfo_80");
        assert!(c.labels.pod.starts_with("podinfo-"), "{}", c.labels.pod);
        assert_eq!(c.error_rate, 0.1);
        assert!(matches!(c.latency, Latency::Uniform { .. }));
        let all = Args::try_parse_from(["testapp", "--telemetry", "all"])
            .unwrap()
            .into_config();
        assert_eq!(all.telemetry, Telemetry::ALL.to_vec());
        assert!(Args::try_parse_from(["testapp", "--telemetry", "consul"]).is_err());
    }
}
