//! A minimal Prometheus text-format (0.0.4) exposition: counter and histogram families with fixed label names.
//!
//! Why not `prometheus-client`: it only writes OpenMetrics, where a counter's sample is always `<name>_total`.
//! Envoy (`envoy_cluster_upstream_rq`) and ingress-nginx (`nginx_ingress_controller_requests`) expose counters
//! without that suffix, and Flagger's queries use those exact names, so the app imitates their wire format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// The content type of [`Family::encode`] output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Label values in the order of the family's label names.
pub type LabelValues = Vec<String>;

#[derive(Debug)]
enum Kind {
    Counter,
    Histogram { buckets: Vec<f64> },
}

#[derive(Debug, Default, Clone)]
struct Series {
    /// Counter value, or histogram count.
    count: u64,
    sum: f64,
    /// Non-cumulative per-bucket counts (histograms only).
    buckets: Vec<u64>,
}

/// A metric family: one name, one kind, a fixed list of label names, any number of series.
#[derive(Debug)]
pub struct Family {
    name: String,
    help: String,
    label_names: Vec<String>,
    kind: Kind,
    series: Mutex<BTreeMap<LabelValues, Series>>,
}

impl Family {
    /// A counter exposed under exactly `name` (no suffix is added).
    pub fn counter(name: &str, help: &str, label_names: &[&str]) -> Self {
        Self::new(name, help, label_names, Kind::Counter)
    }

    /// A histogram exposed as `name_bucket`, `name_sum`, `name_count`; `buckets` are upper bounds, ascending,
    /// without `+Inf`.
    pub fn histogram(name: &str, help: &str, label_names: &[&str], buckets: &[f64]) -> Self {
        Self::new(
            name,
            help,
            label_names,
            Kind::Histogram {
                buckets: buckets.to_vec(),
            },
        )
    }

    fn new(name: &str, help: &str, label_names: &[&str], kind: Kind) -> Self {
        Self {
            name: name.to_string(),
            help: help.to_string(),
            label_names: label_names.iter().map(ToString::to_string).collect(),
            kind,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds one to a counter series, or one observation of `value` to a histogram series.
    pub fn observe(&self, labels: LabelValues, value: f64) {
        debug_assert_eq!(labels.len(), self.label_names.len(), "{}", self.name);
        let mut series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = series.entry(labels).or_default();
        s.count += 1;
        if let Kind::Histogram { buckets } = &self.kind {
            s.sum += value;
            if s.buckets.is_empty() {
                s.buckets = vec![0; buckets.len()];
            }
            if let Some(i) = buckets.iter().position(|le| value <= *le) {
                s.buckets[i] += 1;
            }
        }
    }

    /// Appends this family in text format to `out`.
    pub fn encode(&self, out: &mut String) {
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Histogram { .. } => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
        for (values, s) in &series {
            let labels = self.label_pairs(values);
            match &self.kind {
                Kind::Counter => {
                    let _ = writeln!(out, "{}{{{labels}}} {}", self.name, s.count);
                }
                Kind::Histogram { buckets } => {
                    let sep = if labels.is_empty() { "" } else { "," };
                    let mut cumulative = 0;
                    for (le, n) in buckets.iter().zip(&s.buckets) {
                        cumulative += n;
                        let _ = writeln!(
                            out,
                            "{}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}",
                            self.name
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
                        self.name, s.count
                    );
                    let _ = writeln!(out, "{}_sum{{{labels}}} {}", self.name, s.sum);
                    let _ = writeln!(out, "{}_count{{{labels}}} {}", self.name, s.count);
                }
            }
        }
    }

    fn label_pairs(&self, values: &[String]) -> String {
        let mut out = String::new();
        for (i, (name, value)) in self.label_names.iter().zip(values).enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{name}=\"{}\"", escape(value));
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_keeps_its_exact_name() {
        let f = Family::counter(
            "envoy_cluster_upstream_rq",
            "Requests",
            &["envoy_cluster_name", "code"],
        );
        f.observe(vec!["a_b".into(), "200".into()], 1.0);
        f.observe(vec!["a_b".into(), "200".into()], 1.0);
        f.observe(vec!["a\"b".into(), "500".into()], 1.0);
        let mut out = String::new();
        f.encode(&mut out);
        assert_eq!(
            out,
            "# HELP envoy_cluster_upstream_rq Requests\n\
             # TYPE envoy_cluster_upstream_rq counter\n\
             envoy_cluster_upstream_rq{envoy_cluster_name=\"a\\\"b\",code=\"500\"} 1\n\
             envoy_cluster_upstream_rq{envoy_cluster_name=\"a_b\",code=\"200\"} 2\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let f = Family::histogram("rq_time", "Time", &["c"], &[10.0, 100.0]);
        for v in [5.0, 50.0, 60.0, 1000.0] {
            f.observe(vec!["x".into()], v);
        }
        let mut out = String::new();
        f.encode(&mut out);
        assert!(out.contains("rq_time_bucket{c=\"x\",le=\"10\"} 1\n"), "{out}");
        assert!(out.contains("rq_time_bucket{c=\"x\",le=\"100\"} 3\n"), "{out}");
        assert!(out.contains("rq_time_bucket{c=\"x\",le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("rq_time_sum{c=\"x\"} 1115\n"), "{out}");
        assert!(out.contains("rq_time_count{c=\"x\"} 4\n"), "{out}");
    }
}
