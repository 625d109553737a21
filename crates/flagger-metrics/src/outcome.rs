//! Classification of one metric check: Pass, Fail (value outside the range), NoData, or Error, with the
//! Event Flagger would emit (same wording) and a clearer summary of our own.

use flagger_api::{Canary, CanaryMetric};

use crate::builtin::{BuiltinMetric, Observer};
use crate::gofmt;
use crate::provider::ProviderError;
use crate::template::RenderError;

/// What a check runs.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckKind {
    /// A builtin metric through the canary's observer.
    Builtin {
        /// Which builtin.
        metric: BuiltinMetric,
        /// The query set used.
        observer: Observer,
        /// The metrics provider key (`istio`, `kubernetes:service`, ...), as it appears in Flagger's messages.
        provider_key: String,
    },
    /// An inline `query`, run on the canary's Prometheus.
    Query,
    /// A MetricTemplate.
    Template {
        /// Template name.
        name: String,
        /// Template namespace.
        namespace: String,
    },
}

/// One check of one metric of a canary: everything [`evaluate`] needs besides the query result.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// What runs.
    pub kind: CheckKind,
    /// `metrics[].name`.
    pub metric: String,
    /// Deprecated `threshold`.
    pub threshold: Option<f64>,
    /// `thresholdRange.min`.
    pub min: Option<f64>,
    /// `thresholdRange.max`.
    pub max: Option<f64>,
    /// Whether `thresholdRange` is set at all (even empty: then the legacy threshold is ignored).
    pub has_range: bool,
    /// Canary name.
    pub canary: String,
    /// Canary namespace.
    pub namespace: String,
    /// `spec.targetRef.name`.
    pub target: String,
}

impl Check {
    /// A check of `metric` on `canary` of the given kind.
    pub fn new(kind: CheckKind, canary: &Canary, metric: &CanaryMetric) -> Self {
        let range = metric.threshold_range.as_ref();
        Self {
            kind,
            metric: metric.name.clone(),
            threshold: metric.threshold,
            min: range.and_then(|r| r.min),
            max: range.and_then(|r| r.max),
            has_range: range.is_some(),
            canary: canary.metadata.name.clone().unwrap_or_default(),
            namespace: canary.metadata.namespace.clone().unwrap_or_default(),
            target: canary.spec.target_ref.name.clone(),
        }
    }
}

/// The checks Flagger runs for a canary's metrics, in its order: first, per metric, the builtin check (by
/// name, even when the metric also has a templateRef) and the inline `query`; then, per metric, the
/// MetricTemplate or, for a metric with neither, [`Planned::Unusable`].
#[derive(Clone, Debug, PartialEq)]
pub enum Planned {
    /// `metrics[index]` has a builtin name.
    Builtin(usize, BuiltinMetric),
    /// `metrics[index].query` is set.
    Query(usize),
    /// `metrics[index].templateRef` is set.
    Template(usize),
    /// `metrics[index]` has no builtin name, query or templateRef: an error check.
    Unusable(usize),
}

/// See [`Planned`].
pub fn plan(metrics: &[CanaryMetric]) -> Vec<Planned> {
    let mut planned = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        if let Some(b) = BuiltinMetric::from_name(&m.name) {
            planned.push(Planned::Builtin(i, b));
        }
        if m.query.as_deref().is_some_and(|q| !q.is_empty()) {
            planned.push(Planned::Query(i));
        }
    }
    for (i, m) in metrics.iter().enumerate() {
        if m.template_ref.is_some() {
            planned.push(Planned::Template(i));
        } else if BuiltinMetric::from_name(&m.name).is_none()
            && m.query.as_deref().unwrap_or_default().is_empty()
        {
            planned.push(Planned::Unusable(i));
        }
    }
    planned
}

/// Flagger's Event message for a metric with no builtin name, query or templateRef.
pub const UNUSABLE_MESSAGE: &str =
    "Metric query failed for no usable metrics template and query were configured";

/// Why a check produced no value.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The query template did not render.
    #[error("query render error: {0}")]
    Render(#[from] RenderError),
    /// The provider failed or returned no data.
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// Which bound a failing value crossed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// Below `thresholdRange.min` (or below the legacy `threshold` of a success rate).
    Min(f64),
    /// Above `thresholdRange.max` (or above the legacy `threshold` of any other metric).
    Max(f64),
}

/// The classification of one check.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The value is within range.
    Pass {
        /// The value compared (percent, milliseconds for durations, raw otherwise).
        value: f64,
    },
    /// The value is out of range.
    Fail {
        /// The value compared.
        value: f64,
        /// The bound it crossed.
        bound: Bound,
    },
    /// The query returned nothing (empty result or NaN): usually the canary gets no traffic.
    NoData {
        /// What the provider said.
        detail: String,
    },
    /// The query could not run or its answer could not be read.
    Error {
        /// What went wrong.
        detail: String,
    },
}

impl Outcome {
    /// Stable name: `Pass`, `Fail`, `NoData`, `Error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pass { .. } => "Pass",
            Self::Fail { .. } => "Fail",
            Self::NoData { .. } => "NoData",
            Self::Error { .. } => "Error",
        }
    }

    /// Whether the check passed; every other outcome counts as a failed check, as in Flagger.
    pub fn is_pass(&self) -> bool {
        matches!(self, Self::Pass { .. })
    }
}

/// Severity of Flagger's Event for a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// `recordEventWarningf`: logged at info, Event type Warning.
    Warning,
    /// `recordEventErrorf`: logged at error, Event type Warning.
    Error,
}

/// The result of [`evaluate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// The classification.
    pub outcome: Outcome,
    /// Flagger's Event for a non-passing check, in its exact wording.
    pub event: Option<(Severity, String)>,
    /// Our classification text, e.g. `request-success-rate 87.50% < 99%` or
    /// `no data for request-duration: is the canary receiving traffic? ...`.
    pub summary: String,
    /// The value for `flagger_canary_metric_analysis` (durations in seconds), when there is one.
    pub analysis_value: Option<f64>,
}

/// Classifies a check's result: Flagger's threshold rules (`thresholdRange.min`/`max` when `thresholdRange`
/// is set; otherwise the legacy `threshold`, a minimum for the success rate and a maximum for everything
/// else, 0 when unset), with durations compared in whole milliseconds.
pub fn evaluate(check: &Check, result: Result<f64, CheckError>) -> Verdict {
    let value = match result {
        Ok(v) => v,
        Err(e) => return failed_query(check, e),
    };
    match &check.kind {
        CheckKind::Builtin {
            metric: BuiltinMetric::Duration,
            observer,
            ..
        } => duration_verdict(check, observer.duration_millis(value)),
        CheckKind::Builtin {
            metric: BuiltinMetric::SuccessRate,
            ..
        } => {
            let bound = crossed(check, value, LegacyThreshold::Min);
            let pct = |v: f64| format!("{}%", gofmt::float_v(v));
            let shown = format!("{}%", gofmt::float_2f(value));
            let (event, summary) = match bound {
                None => (
                    None,
                    format!("{} {shown} within {}", check.metric, range_text(check, true, pct)),
                ),
                Some(b) => {
                    let (op, limit) = op_limit(b);
                    (
                        Some((
                            Severity::Warning,
                            format!(
                                "Halt {}.{} advancement success rate {shown} {op} {}",
                                check.canary,
                                check.namespace,
                                pct(limit)
                            ),
                        )),
                        format!("{} {shown} {op} {}", check.metric, pct(limit)),
                    )
                }
            };
            verdict(value, bound, event, summary, value)
        }
        CheckKind::Query | CheckKind::Template { .. } => {
            let bound = crossed(check, value, LegacyThreshold::Max);
            let shown = gofmt::float_2f(value);
            let (event, summary) = match bound {
                None => (
                    None,
                    format!(
                        "{} {shown} within {}",
                        check.metric,
                        range_text(check, false, gofmt::float_v)
                    ),
                ),
                Some(b) => {
                    let (op, limit) = op_limit(b);
                    let limit = gofmt::float_v(limit);
                    (
                        Some((
                            Severity::Warning,
                            format!(
                                "Halt {}.{} advancement {} {shown} {op} {limit}",
                                check.canary, check.namespace, check.metric
                            ),
                        )),
                        format!("{} {shown} {op} {limit}{}", check.metric, unset_note(check)),
                    )
                }
            };
            verdict(value, bound, event, summary, value)
        }
    }
}

fn verdict(
    value: f64,
    bound: Option<Bound>,
    event: Option<(Severity, String)>,
    summary: String,
    analysis: f64,
) -> Verdict {
    let outcome = match bound {
        None => Outcome::Pass { value },
        Some(bound) => Outcome::Fail { value, bound },
    };
    Verdict {
        outcome,
        event,
        summary,
        analysis_value: Some(analysis),
    }
}

#[derive(Clone, Copy)]
enum LegacyThreshold {
    Min,
    Max,
}

fn crossed(check: &Check, value: f64, legacy: LegacyThreshold) -> Option<Bound> {
    if check.has_range {
        if let Some(min) = check.min.filter(|min| value < *min) {
            return Some(Bound::Min(min));
        }
        return check.max.filter(|max| value > *max).map(Bound::Max);
    }
    let threshold = check.threshold.unwrap_or(0.0);
    match legacy {
        LegacyThreshold::Min => (threshold > value).then_some(Bound::Min(threshold)),
        LegacyThreshold::Max => (value > threshold).then_some(Bound::Max(threshold)),
    }
}

fn op_limit(bound: Bound) -> (&'static str, f64) {
    match bound {
        Bound::Min(v) => ("<", v),
        Bound::Max(v) => (">", v),
    }
}

fn unset_note(check: &Check) -> &'static str {
    if !check.has_range && check.threshold.is_none() {
        " (no thresholdRange or threshold is set, so Flagger's limit is 0)"
    } else {
        ""
    }
}

fn range_text(check: &Check, legacy_is_min: bool, fmt: impl Fn(f64) -> String) -> String {
    let (min, max) = if check.has_range {
        (check.min, check.max)
    } else if legacy_is_min {
        (Some(check.threshold.unwrap_or(0.0)), None)
    } else {
        (None, Some(check.threshold.unwrap_or(0.0)))
    };
    match (min, max) {
        (Some(a), Some(b)) => format!("[{}, {}]", fmt(a), fmt(b)),
        (Some(a), None) => format!("[{}, ∞)", fmt(a)),
        (None, Some(b)) => format!("(-∞, {}]", fmt(b)),
        (None, None) => "(-∞, ∞)".to_owned(),
    }
}

/// `time.Duration(x) * time.Millisecond` for a threshold `x` (Go truncates the float to an integer).
#[expect(
    clippy::cast_possible_truncation,
    reason = "Go's float-to-int64 conversion truncates too"
)]
fn threshold_millis(x: f64) -> i64 {
    x as i64
}

fn duration_verdict(check: &Check, millis: i64) -> Verdict {
    const NS_PER_MS: i64 = 1_000_000;
    let show = |ms: i64| gofmt::duration(ms.saturating_mul(NS_PER_MS));
    let bound = if check.has_range {
        match (check.min, check.max) {
            (Some(min), _) if millis < threshold_millis(min) => Some(Bound::Min(min)),
            (_, Some(max)) if millis > threshold_millis(max) => Some(Bound::Max(max)),
            _ => None,
        }
    } else {
        let t = check.threshold.unwrap_or(0.0);
        (millis > threshold_millis(t)).then_some(Bound::Max(t))
    };
    #[expect(clippy::cast_precision_loss, reason = "milliseconds far below 2^53")]
    let value = millis as f64;
    let (event, summary) = match bound {
        None => {
            let range = range_text(check, false, |x| show(threshold_millis(x)));
            (None, format!("{} {} within {range}", check.metric, show(millis)))
        }
        Some(b) => {
            let (op, limit) = op_limit(b);
            let limit = show(threshold_millis(limit));
            (
                Some((
                    Severity::Warning,
                    format!(
                        "Halt {}.{} advancement request duration {} {op} {limit}",
                        check.canary,
                        check.namespace,
                        show(millis)
                    ),
                )),
                format!(
                    "{} {} {op} {limit}{}",
                    check.metric,
                    show(millis),
                    unset_note(check)
                ),
            )
        }
    };
    verdict(value, bound, event, summary, value / 1000.0)
}

fn failed_query(check: &Check, error: CheckError) -> Verdict {
    let no_data = matches!(&error, CheckError::Provider(e) if e.is_no_data());
    let (severity, message) = match (&check.kind, no_data) {
        (
            CheckKind::Builtin {
                metric, provider_key, ..
            },
            true,
        ) => {
            let base = format!(
                "Halt advancement no values found for {provider_key} metric {} probably {}.{} is not receiving \
                 traffic",
                check.metric, check.target, check.namespace
            );
            match metric {
                BuiltinMetric::SuccessRate => (
                    Severity::Warning,
                    format!("{base}: running query failed: no values found"),
                ),
                BuiltinMetric::Duration => (Severity::Warning, base),
            }
        }
        (CheckKind::Builtin { .. }, false) => (Severity::Error, format!("Prometheus query failed: {error}")),
        (CheckKind::Query, true) => (
            Severity::Warning,
            format!("Halt advancement no values found for metric: {}", check.metric),
        ),
        (CheckKind::Query, false) => (
            Severity::Error,
            format!("Prometheus query failed for {}: {error}", check.metric),
        ),
        (CheckKind::Template { .. }, true) => (
            Severity::Warning,
            format!(
                "Halt advancement no values found for custom metric: {}: no values found",
                check.metric
            ),
        ),
        (CheckKind::Template { name, namespace }, false) => match &error {
            CheckError::Render(e) => (
                Severity::Error,
                format!("Metric template {name}.{namespace} query render error: {e}"),
            ),
            CheckError::Provider(e) => (
                Severity::Error,
                format!("Metric query failed for {}: {e}", check.metric),
            ),
        },
    };
    let (outcome, summary) = if no_data {
        (
            Outcome::NoData {
                detail: error.to_string(),
            },
            format!(
                "no data for {}: is the canary {}.{} receiving traffic? ({error})",
                check.metric, check.target, check.namespace
            ),
        )
    } else {
        (
            Outcome::Error {
                detail: error.to_string(),
            },
            format!("error running {}: {error}", check.metric),
        )
    };
    Verdict {
        outcome,
        event: Some((severity, message)),
        summary,
        analysis_value: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::NoDataReason;

    fn canary() -> Canary {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo-deploy"},
                "service": {"port": 80}
            }
        }))
        .unwrap()
    }

    fn metric(json: serde_json::Value) -> CanaryMetric {
        serde_json::from_value(json).unwrap()
    }

    fn builtin(m: BuiltinMetric, observer: Observer, json: serde_json::Value) -> Check {
        let kind = CheckKind::Builtin {
            metric: m,
            observer,
            provider_key: "istio".into(),
        };
        Check::new(kind, &canary(), &metric(json))
    }

    fn no_data() -> CheckError {
        CheckError::Provider(ProviderError::NoValues {
            provider: "prometheus",
            reason: NoDataReason::Empty,
        })
    }

    fn event(v: &Verdict) -> &str {
        v.event.as_ref().map(|(_, m)| m.as_str()).unwrap_or_default()
    }

    #[test]
    fn success_rate_range_and_legacy_threshold() {
        let sr = |json| builtin(BuiltinMetric::SuccessRate, Observer::Istio, json);
        let c = sr(serde_json::json!({"name": "request-success-rate", "thresholdRange": {"min": 99}}));
        let v = evaluate(&c, Ok(87.5));
        assert_eq!(
            v.outcome,
            Outcome::Fail {
                value: 87.5,
                bound: Bound::Min(99.0)
            }
        );
        assert_eq!(
            event(&v),
            "Halt podinfo.test advancement success rate 87.50% < 99%"
        );
        assert_eq!(v.summary, "request-success-rate 87.50% < 99%");
        assert_eq!(v.analysis_value, Some(87.5));
        let v = evaluate(&c, Ok(99.0));
        assert_eq!(v.outcome, Outcome::Pass { value: 99.0 });
        assert_eq!(v.event, None);
        assert_eq!(v.summary, "request-success-rate 99.00% within [99%, ∞)");

        let c = sr(serde_json::json!({"name": "request-success-rate", "thresholdRange": {"max": 99.5}}));
        assert_eq!(
            event(&evaluate(&c, Ok(100.0))),
            "Halt podinfo.test advancement success rate 100.00% > 99.5%"
        );
        // Legacy threshold is a minimum for the success rate; it is ignored when thresholdRange is set.
        let c = sr(serde_json::json!({"name": "request-success-rate", "threshold": 95}));
        assert_eq!(
            event(&evaluate(&c, Ok(94.99))),
            "Halt podinfo.test advancement success rate 94.99% < 95%"
        );
        assert!(evaluate(&c, Ok(95.0)).outcome.is_pass());
        let c =
            sr(serde_json::json!({"name": "request-success-rate", "threshold": 95, "thresholdRange": {}}));
        assert!(evaluate(&c, Ok(1.0)).outcome.is_pass());
        // No threshold at all: 0, which a success rate never goes below.
        let c = sr(serde_json::json!({"name": "request-success-rate"}));
        assert!(evaluate(&c, Ok(0.0)).outcome.is_pass());
    }

    #[test]
    fn durations_compare_in_truncated_milliseconds() {
        let d = |observer, json| builtin(BuiltinMetric::Duration, observer, json);
        let c = d(
            Observer::Istio,
            serde_json::json!({"name": "request-duration", "thresholdRange": {"max": 500}}),
        );
        let v = evaluate(&c, Ok(500.9));
        assert!(v.outcome.is_pass(), "500.9ms truncates to 500ms: {v:?}");
        assert_eq!(v.analysis_value, Some(0.5));
        let v = evaluate(&c, Ok(1512.3));
        assert_eq!(
            v.outcome,
            Outcome::Fail {
                value: 1512.0,
                bound: Bound::Max(500.0)
            }
        );
        assert_eq!(
            event(&v),
            "Halt podinfo.test advancement request duration 1.512s > 500ms"
        );
        assert_eq!(v.summary, "request-duration 1.512s > 500ms");
        // The kubernetes/Gateway API queries return seconds.
        let c = d(
            Observer::Http,
            serde_json::json!({"name": "request-duration", "thresholdRange": {"min": 10, "max": 500}}),
        );
        assert_eq!(evaluate(&c, Ok(0.2485)).outcome, Outcome::Pass { value: 248.0 });
        assert_eq!(
            event(&evaluate(&c, Ok(0.0099))),
            "Halt podinfo.test advancement request duration 9ms < 10ms"
        );
        // Legacy threshold is a maximum; none at all is 0ms, so any positive duration fails.
        let c = d(
            Observer::Istio,
            serde_json::json!({"name": "request-duration", "threshold": 250}),
        );
        assert_eq!(
            event(&evaluate(&c, Ok(251.0))),
            "Halt podinfo.test advancement request duration 251ms > 250ms"
        );
        let c = d(Observer::Istio, serde_json::json!({"name": "request-duration"}));
        let v = evaluate(&c, Ok(1.0));
        assert_eq!(
            event(&v),
            "Halt podinfo.test advancement request duration 1ms > 0s"
        );
        assert!(v.summary.contains("Flagger's limit is 0"), "{}", v.summary);
        assert!(evaluate(&c, Ok(0.9)).outcome.is_pass());
    }

    #[test]
    fn custom_metrics_use_max_as_legacy_threshold() {
        let c = Check::new(
            CheckKind::Query,
            &canary(),
            &metric(serde_json::json!({"name": "error-rate", "query": "x", "threshold": 1})),
        );
        let v = evaluate(&c, Ok(3.2));
        assert_eq!(
            v.outcome,
            Outcome::Fail {
                value: 3.2,
                bound: Bound::Max(1.0)
            }
        );
        assert_eq!(event(&v), "Halt podinfo.test advancement error-rate 3.20 > 1");
        let c = Check::new(
            CheckKind::Template {
                name: "t".into(),
                namespace: "ops".into(),
            },
            &canary(),
            &metric(
                serde_json::json!({"name": "latency", "templateRef": {"name": "t"}, "thresholdRange": {"min": 0.5, "max": 2}}),
            ),
        );
        assert_eq!(
            event(&evaluate(&c, Ok(0.25))),
            "Halt podinfo.test advancement latency 0.25 < 0.5"
        );
        assert!(evaluate(&c, Ok(2.0)).outcome.is_pass());
        // Neither threshold nor range: any positive value fails (Flagger's threshold 0).
        let c = Check::new(
            CheckKind::Query,
            &canary(),
            &metric(serde_json::json!({"name": "q", "query": "x"})),
        );
        assert!(!evaluate(&c, Ok(0.01)).outcome.is_pass());
    }

    #[test]
    fn no_data_and_errors_carry_flaggers_wording() {
        let sr = builtin(
            BuiltinMetric::SuccessRate,
            Observer::Istio,
            serde_json::json!({"name": "request-success-rate"}),
        );
        let v = evaluate(&sr, Err(no_data()));
        assert!(matches!(v.outcome, Outcome::NoData { .. }));
        assert_eq!(
            v.event,
            Some((
                Severity::Warning,
                "Halt advancement no values found for istio metric request-success-rate probably podinfo-deploy.test \
                 is not receiving traffic: running query failed: no values found"
                    .to_owned()
            ))
        );
        assert!(
            v.summary.starts_with(
                "no data for request-success-rate: is the canary podinfo-deploy.test receiving traffic?"
            ),
            "{}",
            v.summary
        );
        assert_eq!(v.analysis_value, None);

        let d = builtin(
            BuiltinMetric::Duration,
            Observer::Istio,
            serde_json::json!({"name": "request-duration"}),
        );
        assert_eq!(
            event(&evaluate(&d, Err(no_data()))),
            "Halt advancement no values found for istio metric request-duration probably podinfo-deploy.test is not \
             receiving traffic"
        );
        let status = || {
            CheckError::Provider(ProviderError::Status {
                provider: "prometheus",
                status: 400,
                status_text: "Bad Request".into(),
                body: "bad".into(),
            })
        };
        let v = evaluate(&d, Err(status()));
        assert_eq!(v.outcome.as_str(), "Error");
        assert_eq!(
            v.event,
            Some((
                Severity::Error,
                "Prometheus query failed: prometheus: error response: Status 400 Bad Request: bad".to_owned()
            ))
        );

        let q = Check::new(
            CheckKind::Query,
            &canary(),
            &metric(serde_json::json!({"name": "q", "query": "x"})),
        );
        assert_eq!(
            event(&evaluate(&q, Err(no_data()))),
            "Halt advancement no values found for metric: q"
        );
        assert!(
            event(&evaluate(&q, Err(status())))
                .starts_with("Prometheus query failed for q: prometheus: error response")
        );

        let t = Check::new(
            CheckKind::Template {
                name: "tpl".into(),
                namespace: "ops".into(),
            },
            &canary(),
            &metric(
                serde_json::json!({"name": "custom", "templateRef": {"name": "tpl", "namespace": "ops"}}),
            ),
        );
        assert_eq!(
            event(&evaluate(&t, Err(no_data()))),
            "Halt advancement no values found for custom metric: custom: no values found"
        );
        assert!(
            event(&evaluate(&t, Err(status())))
                .starts_with("Metric query failed for custom: prometheus: error")
        );
        let render = CheckError::Render(RenderError::MissingVariable { key: "dir".into() });
        let v = evaluate(&t, Err(render));
        assert_eq!(v.outcome.as_str(), "Error");
        assert!(
            event(&v)
                .starts_with("Metric template tpl.ops query render error: map has no entry for key \"dir\""),
            "{v:?}"
        );
    }

    #[test]
    fn plan_follows_flaggers_order() {
        let metrics: Vec<CanaryMetric> = serde_json::from_value(serde_json::json!([
            {"name": "request-success-rate"},
            {"name": "custom", "templateRef": {"name": "t"}},
            {"name": "inline", "query": "up"},
            {"name": "request-duration", "templateRef": {"name": "t2"}},
            {"name": "nothing"},
            {"name": "both", "query": "up", "templateRef": {"name": "t3"}},
        ]))
        .unwrap();
        assert_eq!(
            plan(&metrics),
            vec![
                Planned::Builtin(0, BuiltinMetric::SuccessRate),
                Planned::Query(2),
                Planned::Builtin(3, BuiltinMetric::Duration),
                Planned::Query(5),
                Planned::Template(1),
                Planned::Template(3),
                Planned::Unusable(4),
                Planned::Template(5),
            ]
        );
    }
}
