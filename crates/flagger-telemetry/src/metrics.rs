//! Flagger's operator metrics (`pkg/metrics/recorder.go`) with their exact names, types and labels, plus the
//! `flagger_rs_*` metrics flagger-rs adds for itself.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `flagger_info` | gauge (always 1) | `version`, `mesh_provider` |
//! | `flagger_canary_total` | gauge | `namespace` |
//! | `flagger_canary_status` | gauge: 0 Progressing, 2 Failed, 1 any other phase | `name`, `namespace` |
//! | `flagger_canary_weight` | gauge | `workload`, `namespace` |
//! | `flagger_canary_metric_analysis` | gauge | `name`, `namespace`, `metric` |
//! | `flagger_canary_duration_seconds` | histogram, Go's default buckets | `name`, `namespace` |
//! | `flagger_canary_successes_total` | counter | `name`, `namespace`, `deployment_strategy`, `analysis_status` |
//! | `flagger_canary_failures_total` | counter | same |
//!
//! As in Flagger, `name` is the target's name (`spec.targetRef.name`), not the Canary's, and series are never
//! deleted.
//!
//! Our own metrics (not in Flagger; the `flagger_rs_` prefix marks them):
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `flagger_rs_reconcile_errors_total` | counter | `category` | failed reconciles, by the error's stable category |
//! | `flagger_rs_webhook_failures_total` | counter | `type` | webhook calls that failed (`pre-rollout`, `event`, ...) |
//! | `flagger_rs_alert_failures_total` | counter | `provider` | notifications that could not be sent (`slack`, ...) |
//! | `flagger_rs_leader` | gauge | | 1 while this replica holds the leader Lease (or runs without election) |
//!
//! Register everything on a registry *without* a prefix: [`OperatorMetrics::register`] adds `flagger_` itself,
//! and the process metrics ([`crate::process`]) must keep their bare `process_*` names.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use flagger_api::CanaryPhase;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Go's `prometheus.DefBuckets`, used by Flagger's `flagger_canary_duration_seconds`.
pub const GO_DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The deployment strategy label of the successes/failures counters (`canary`, `blue-green`, `ab-testing`).
pub use flagger_api::DeploymentStrategy;

/// The analysis status label of the successes/failures counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnalysisStatus {
    /// The analysis ran to its end (`completed`).
    Completed,
    /// The analysis was skipped (`skipAnalysis: true`) (`skipped`).
    Skipped,
}

impl AnalysisStatus {
    /// The label value Flagger uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Skipped => "skipped",
        }
    }
}

/// The value of `flagger_canary_status` for a phase: 0 Progressing, 2 Failed, 1 anything else.
pub fn status_value(phase: CanaryPhase) -> i64 {
    match phase {
        CanaryPhase::Progressing => 0,
        CanaryPhase::Failed => 2,
        _ => 1,
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: String,
    mesh_provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CanaryLabels {
    name: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WeightLabels {
    workload: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnalysisLabels {
    name: String,
    namespace: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    name: String,
    namespace: String,
    deployment_strategy: &'static str,
    analysis_status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabels {
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn duration_histogram() -> Histogram {
    Histogram::new(GO_DEFAULT_BUCKETS)
}

/// The operator's metrics. Cheap to clone: every handle shares the registered series.
#[derive(Clone, Debug)]
pub struct OperatorMetrics {
    info: Family<InfoLabels, Gauge>,
    total: Family<NamespaceLabels, Gauge>,
    status: Family<CanaryLabels, Gauge>,
    weight: Family<WeightLabels, FloatGauge>,
    analysis: Family<AnalysisLabels, FloatGauge>,
    duration: Family<CanaryLabels, Histogram, fn() -> Histogram>,
    successes: Family<ResultLabels, Counter>,
    failures: Family<ResultLabels, Counter>,
    reconcile_errors: Family<CategoryLabels, Counter>,
    webhook_failures: Family<WebhookLabels, Counter>,
    alert_failures: Family<ProviderLabels, Counter>,
    leader: Gauge,
}

impl OperatorMetrics {
    /// Registers every metric under the `flagger` prefix of `registry` (which should have no prefix itself).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            info: Family::default(),
            total: Family::default(),
            status: Family::default(),
            weight: Family::default(),
            analysis: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            successes: Family::default(),
            failures: Family::default(),
            reconcile_errors: Family::default(),
            webhook_failures: Family::default(),
            alert_failures: Family::default(),
            leader: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("flagger");
        r.register(
            "info",
            "Flagger version and mesh provider information",
            metrics.info.clone(),
        );
        r.register(
            "canary_total",
            "Total number of canary object",
            metrics.total.clone(),
        );
        r.register(
            "canary_status",
            "Last canary analysis result (0 - running, 1 - successful, 2 - failed)",
            metrics.status.clone(),
        );
        r.register(
            "canary_weight",
            "The virtual service destination weight current value",
            metrics.weight.clone(),
        );
        r.register(
            "canary_metric_analysis",
            "Last canary analysis result per metric",
            metrics.analysis.clone(),
        );
        r.register_with_unit(
            "canary_duration",
            "Seconds spent performing canary analysis",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        r.register(
            "canary_successes",
            "Total number of canary successes",
            metrics.successes.clone(),
        );
        r.register(
            "canary_failures",
            "Total number of canary failures",
            metrics.failures.clone(),
        );
        r.register(
            "rs_reconcile_errors",
            "Failed canary reconciles by error category (flagger-rs)",
            metrics.reconcile_errors.clone(),
        );
        r.register(
            "rs_webhook_failures",
            "Failed webhook calls by webhook type (flagger-rs)",
            metrics.webhook_failures.clone(),
        );
        r.register(
            "rs_alert_failures",
            "Notifications that could not be sent, by provider (flagger-rs)",
            metrics.alert_failures.clone(),
        );
        r.register(
            "rs_leader",
            "1 while this replica is the leader (or runs without leader election) (flagger-rs)",
            metrics.leader.clone(),
        );
        metrics
    }

    /// `flagger_info{version, mesh_provider} 1`.
    pub fn set_info(&self, version: &str, mesh_provider: &str) {
        self.info
            .get_or_create(&InfoLabels {
                version: version.to_owned(),
                mesh_provider: mesh_provider.to_owned(),
            })
            .set(1);
    }

    /// `flagger_canary_total{namespace}`: the number of canaries in a namespace.
    pub fn set_total(&self, namespace: &str, count: i64) {
        self.total
            .get_or_create(&NamespaceLabels {
                namespace: namespace.to_owned(),
            })
            .set(count);
    }

    /// `flagger_canary_status{name, namespace}` from a phase (see [`status_value`]); `name` is the target's.
    pub fn set_status(&self, name: &str, namespace: &str, phase: CanaryPhase) {
        self.status
            .get_or_create(&canary(name, namespace))
            .set(status_value(phase));
    }

    /// `flagger_canary_weight`: series `<target>-primary` carries the primary weight, `<target>` the canary's.
    pub fn set_weight(&self, target: &str, namespace: &str, primary: i64, canary: i64) {
        let series = |workload: String, value: i64| {
            self.weight
                .get_or_create(&WeightLabels {
                    workload,
                    namespace: namespace.to_owned(),
                })
                .set(value as f64);
        };
        series(format!("{target}-primary"), primary);
        series(target.to_owned(), canary);
    }

    /// `flagger_canary_metric_analysis{name, namespace, metric}`: the last value of a metric check
    /// (durations in seconds).
    pub fn set_analysis(&self, name: &str, namespace: &str, metric: &str, value: f64) {
        self.analysis
            .get_or_create(&AnalysisLabels {
                name: name.to_owned(),
                namespace: namespace.to_owned(),
                metric: metric.to_owned(),
            })
            .set(value);
    }

    /// Adds one observation to `flagger_canary_duration_seconds{name, namespace}`.
    pub fn observe_duration(&self, name: &str, namespace: &str, elapsed: Duration) {
        self.duration
            .get_or_create(&canary(name, namespace))
            .observe(elapsed.as_secs_f64());
    }

    /// A guard that observes `flagger_canary_duration_seconds` when dropped (times one analysis tick).
    pub fn start_timer(&self, name: &str, namespace: &str) -> DurationTimer {
        DurationTimer {
            metrics: self.clone(),
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            start: Instant::now(),
        }
    }

    /// Increments `flagger_canary_successes_total`.
    pub fn inc_success(
        &self,
        name: &str,
        namespace: &str,
        strategy: DeploymentStrategy,
        status: AnalysisStatus,
    ) {
        self.successes
            .get_or_create(&result(name, namespace, strategy, status))
            .inc();
    }

    /// Increments `flagger_canary_failures_total`.
    pub fn inc_failure(
        &self,
        name: &str,
        namespace: &str,
        strategy: DeploymentStrategy,
        status: AnalysisStatus,
    ) {
        self.failures
            .get_or_create(&result(name, namespace, strategy, status))
            .inc();
    }

    /// Increments `flagger_rs_reconcile_errors_total{category}`; `category` must be a stable,
    /// low-cardinality name (an error's discriminant, never its message).
    pub fn inc_reconcile_error(&self, category: &'static str) {
        self.reconcile_errors
            .get_or_create(&CategoryLabels { category })
            .inc();
    }

    /// Increments `flagger_rs_webhook_failures_total{type}` (`confirm-rollout`, `pre-rollout`, ...).
    pub fn inc_webhook_failure(&self, webhook_type: &str) {
        self.webhook_failures
            .get_or_create(&WebhookLabels {
                r#type: webhook_type.to_owned(),
            })
            .inc();
    }

    /// Increments `flagger_rs_alert_failures_total{provider}` (`slack`, `msteams`, ...).
    pub fn inc_alert_failure(&self, provider: &str) {
        self.alert_failures
            .get_or_create(&ProviderLabels {
                provider: provider.to_owned(),
            })
            .inc();
    }

    /// Sets `flagger_rs_leader`.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
}

/// Observes the elapsed time into `flagger_canary_duration_seconds` when dropped.
#[derive(Debug)]
pub struct DurationTimer {
    metrics: OperatorMetrics,
    name: String,
    namespace: String,
    start: Instant,
}

impl Drop for DurationTimer {
    fn drop(&mut self) {
        self.metrics
            .observe_duration(&self.name, &self.namespace, self.start.elapsed());
    }
}

fn canary(name: &str, namespace: &str) -> CanaryLabels {
    CanaryLabels {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
    }
}

fn result(name: &str, namespace: &str, strategy: DeploymentStrategy, status: AnalysisStatus) -> ResultLabels {
    ResultLabels {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        deployment_strategy: strategy.as_str(),
        analysis_status: status.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::{prometheus_text, text};

    fn render_classic(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_text::encode(&mut out, registry).unwrap();
        out
    }

    fn populated() -> (Registry, OperatorMetrics) {
        let mut registry = Registry::default();
        let m = OperatorMetrics::register(&mut registry);
        m.set_info("1.44.0", "istio");
        m.set_total("test", 2);
        m.set_status("podinfo", "test", CanaryPhase::Progressing);
        m.set_status("backend", "test", CanaryPhase::Failed);
        m.set_status("frontend", "test", CanaryPhase::Succeeded);
        m.set_weight("podinfo", "test", 90, 10);
        m.set_analysis("podinfo", "test", "request-duration", 0.25);
        m.observe_duration("podinfo", "test", Duration::from_millis(30));
        m.inc_success(
            "podinfo",
            "test",
            DeploymentStrategy::Canary,
            AnalysisStatus::Completed,
        );
        m.inc_failure(
            "backend",
            "test",
            DeploymentStrategy::BlueGreen,
            AnalysisStatus::Skipped,
        );
        m.inc_reconcile_error("kube");
        m.inc_webhook_failure("pre-rollout");
        m.inc_alert_failure("slack");
        m.set_leader(true);
        (registry, m)
    }

    #[test]
    fn classic_text_has_flaggers_names_types_and_labels() {
        let (registry, _) = populated();
        let out = render_classic(&registry);
        for line in [
            "# TYPE flagger_info gauge",
            r#"flagger_info{version="1.44.0",mesh_provider="istio"} 1"#,
            "# TYPE flagger_canary_total gauge",
            r#"flagger_canary_total{namespace="test"} 2"#,
            "# TYPE flagger_canary_status gauge",
            r#"flagger_canary_status{name="podinfo",namespace="test"} 0"#,
            r#"flagger_canary_status{name="backend",namespace="test"} 2"#,
            r#"flagger_canary_status{name="frontend",namespace="test"} 1"#,
            "# TYPE flagger_canary_weight gauge",
            r#"flagger_canary_weight{workload="podinfo-primary",namespace="test"} 90.0"#,
            r#"flagger_canary_weight{workload="podinfo",namespace="test"} 10.0"#,
            "# TYPE flagger_canary_metric_analysis gauge",
            r#"flagger_canary_metric_analysis{name="podinfo",namespace="test",metric="request-duration"} 0.25"#,
            "# TYPE flagger_canary_duration_seconds histogram",
            r#"flagger_canary_duration_seconds_bucket{name="podinfo",namespace="test",le="0.025"} 0"#,
            r#"flagger_canary_duration_seconds_bucket{name="podinfo",namespace="test",le="0.05"} 1"#,
            r#"flagger_canary_duration_seconds_bucket{name="podinfo",namespace="test",le="10"} 1"#,
            r#"flagger_canary_duration_seconds_bucket{name="podinfo",namespace="test",le="+Inf"} 1"#,
            r#"flagger_canary_duration_seconds_count{name="podinfo",namespace="test"} 1"#,
            "# TYPE flagger_canary_successes_total counter",
            r#"flagger_canary_successes_total{name="podinfo",namespace="test",deployment_strategy="canary",analysis_status="completed"} 1"#,
            "# TYPE flagger_canary_failures_total counter",
            r#"flagger_canary_failures_total{name="backend",namespace="test",deployment_strategy="blue-green",analysis_status="skipped"} 1"#,
            r#"flagger_rs_reconcile_errors_total{category="kube"} 1"#,
            r#"flagger_rs_webhook_failures_total{type="pre-rollout"} 1"#,
            r#"flagger_rs_alert_failures_total{provider="slack"} 1"#,
            "flagger_rs_leader 1",
        ] {
            assert!(out.lines().any(|l| l == line), "missing line {line:?} in:\n{out}");
        }
        let buckets = out
            .lines()
            .filter(|l| l.starts_with("flagger_canary_duration_seconds_bucket"))
            .count();
        assert_eq!(
            buckets,
            GO_DEFAULT_BUCKETS.len() + 1,
            "Go's 11 default buckets plus +Inf:\n{out}"
        );
        assert!(!out.contains("# EOF"), "classic text has no EOF marker");
    }

    #[test]
    fn openmetrics_names_counters_without_total_in_type_lines() {
        let (registry, _) = populated();
        let mut out = String::new();
        text::encode(&mut out, &registry).unwrap();
        assert!(
            out.lines()
                .any(|l| l == "# TYPE flagger_canary_successes counter"),
            "{out}"
        );
        assert!(
            out.lines()
                .any(|l| l == "# TYPE flagger_canary_duration_seconds histogram"),
            "{out}"
        );
        assert!(
            out.lines()
                .any(|l| l == "# UNIT flagger_canary_duration_seconds seconds"),
            "{out}"
        );
        assert!(out.contains("\nflagger_canary_successes_total{"), "{out}");
        assert!(out.ends_with("# EOF\n"), "{out}");
    }

    #[test]
    fn status_values_follow_flagger() {
        for phase in CanaryPhase::ALL {
            let expected = match phase {
                CanaryPhase::Progressing => 0,
                CanaryPhase::Failed => 2,
                _ => 1,
            };
            assert_eq!(status_value(phase), expected, "{phase:?}");
        }
    }

    #[test]
    fn timer_observes_on_drop() {
        let (registry, m) = populated();
        drop(m.start_timer("timed", "test"));
        let out = render_classic(&registry);
        assert!(
            out.lines()
                .any(|l| l == r#"flagger_canary_duration_seconds_count{name="timed",namespace="test"} 1"#),
            "{out}"
        );
    }
}
