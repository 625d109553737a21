//! The Keptn provider: KeptnMetric values and Keptn Analyses, through the Kubernetes API.
//!
//! Facts from Flagger 1.44 (`pkg/metrics/providers/keptn.go`): the query (lower-cased, trimmed) is
//! `keptnmetric/<namespace>/<name>` (or `keptnmetrics/...`), whose value is the KeptnMetric's
//! `status.value` (a string read as a float), or `analysis/<namespace>/<definition>/<duration>/<k=v;k2=v2>`
//! (or `analyses/...`; duration default `1m`, arguments optional), which creates a
//! `metrics.keptn.sh/v1beta1` Analysis named `<definition>-<6 random hex characters>` with
//! `spec.analysisDefinition.name`, `spec.timeframe.recent` and `spec.args`, reads it every second until
//! `status.state` is `Completed` and `status.pass` is set (10 s in all), returns 1 if it passed and 0 if not,
//! and deletes it. Both kinds are read at `v1beta1`, as Flagger does. `is_online` is always true.
//!
//! Unlike Flagger, a KeptnMetric without a value (or a `NaN` one) is no data rather than an error.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::{config_error, no_values, not_nan};
use crate::provider::{MetricProvider, NoDataReason, ProviderError, ProviderInit};

const KIND: &str = "keptn";

/// The API group of Keptn metrics.
pub const GROUP: &str = "metrics.keptn.sh";

/// The version Flagger reads KeptnMetrics and creates Analyses at.
pub const VERSION: &str = "v1beta1";

/// How long an Analysis may take (Flagger's `analysisTimeout`).
pub const ANALYSIS_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a created Analysis is read.
pub const ANALYSIS_POLL: Duration = Duration::from_secs(1);

/// Flagger's text for a query of the wrong shape.
const FORMAT_ERROR: &str = "unexpected query format. query must be in the format \
                            <keptnmetric|analysis>/<namespace>/<resourceName>/<duration>/<arguments>";

/// A parsed query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeptnQuery {
    /// Read a KeptnMetric's value.
    Metric {
        /// Namespace.
        namespace: String,
        /// KeptnMetric name.
        name: String,
    },
    /// Run an Analysis.
    Analysis {
        /// Namespace.
        namespace: String,
        /// AnalysisDefinition name.
        definition: String,
        /// `spec.timeframe.recent`.
        duration: String,
        /// `spec.args`.
        args: BTreeMap<String, String>,
    },
}

/// Parses a query as Flagger does (lower-cased first).
pub fn parse_query(query: &str) -> Result<KeptnQuery, ProviderError> {
    let lower = query.to_lowercase();
    let split: Vec<&str> = lower.trim().split('/').collect();
    if split.len() < 3 {
        return Err(query_error(FORMAT_ERROR));
    }
    let namespace = split[1].to_owned();
    match split[0] {
        "keptnmetric" | "keptnmetrics" => Ok(KeptnQuery::Metric {
            namespace,
            name: split[2].to_owned(),
        }),
        "analysis" | "analyses" => {
            let duration = split.get(3).map_or("1m", |d| *d).to_owned();
            let args = split
                .get(4)
                .map(|args| {
                    args.split(';')
                        .filter_map(|pair| {
                            let kv: Vec<&str> = pair.split('=').collect();
                            (kv.len() == 2).then(|| (kv[0].to_owned(), kv[1].to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(KeptnQuery::Analysis {
                namespace,
                definition: split[2].to_owned(),
                duration,
                args,
            })
        }
        _ => Err(query_error(
            "unexpected resource kind provided in the query. must be one of: ['keptnmetric', 'analysis']",
        )),
    }
}

fn query_error(message: &str) -> ProviderError {
    config_error(KIND, format!("keptn: {message}"))
}

/// The `ApiResource` of a Keptn kind at [`VERSION`], with its plural (`keptnmetrics`, `analyses`).
fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, kind), plural)
}

/// The Analysis object Flagger creates for `query` (a [`KeptnQuery::Analysis`]) with `suffix`.
pub fn analysis_object(
    namespace: &str,
    definition: &str,
    duration: &str,
    args: &BTreeMap<String, String>,
    suffix: &str,
) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "Analysis",
        "metadata": {
            "name": format!("{definition}-{suffix}"),
            "namespace": namespace,
        },
        "spec": {
            "analysisDefinition": { "name": definition },
            "timeframe": { "recent": duration },
            "args": args,
        },
    })
}

/// Six random lower-case hex characters (the start of a UUID in Flagger).
fn random_suffix() -> String {
    let mut bytes = [0u8; 3];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // The system RNG failed: fall back to the clock, which still varies between calls.
        let nanos = super::unix_now().subsec_nanos();
        bytes = [(nanos >> 16) as u8, (nanos >> 8) as u8, nanos as u8];
    }
    super::hex(&bytes)
}

/// A Keptn client over the operator's Kubernetes API client.
#[derive(Clone)]
pub struct KeptnProvider {
    client: kube::Client,
    analysis_timeout: Duration,
}

impl std::fmt::Debug for KeptnProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptnProvider")
            .field("analysis_timeout", &self.analysis_timeout)
            .finish_non_exhaustive()
    }
}

impl KeptnProvider {
    /// Uses `init.kube`, the operator's API client.
    pub fn new(init: &ProviderInit<'_>) -> Result<Self, ProviderError> {
        let client = init.kube.cloned().ok_or_else(|| {
            config_error(KIND, "could not initialize KeptnProvider: no KubeConfig provided")
        })?;
        Ok(Self {
            client,
            analysis_timeout: ANALYSIS_TIMEOUT,
        })
    }

    /// The same provider with another Analysis timeout (tests).
    #[must_use]
    pub fn with_analysis_timeout(mut self, timeout: Duration) -> Self {
        self.analysis_timeout = timeout;
        self
    }

    async fn query(&self, query: &str) -> Result<f64, ProviderError> {
        match parse_query(query)? {
            KeptnQuery::Metric { namespace, name } => self.metric(&namespace, &name).await,
            KeptnQuery::Analysis {
                namespace,
                definition,
                duration,
                args,
            } => self.analysis(&namespace, &definition, &duration, &args).await,
        }
    }

    async fn metric(&self, namespace: &str, name: &str) -> Result<f64, ProviderError> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            namespace,
            &resource("KeptnMetric", "keptnmetrics"),
        );
        let object = api.get(name).await.map_err(|e| ProviderError::Request {
            provider: KIND,
            url: format!("keptnmetrics/{namespace}/{name}"),
            reason: format!("could not retrieve KeptnMetric {namespace}/{name}: {e}"),
        })?;
        let Some(value) = object.data.pointer("/status/value").and_then(Value::as_str) else {
            return Err(no_values(KIND, NoDataReason::Empty));
        };
        let parsed = parse_go_float(value).ok_or_else(|| ProviderError::Parse {
            provider: KIND,
            detail: format!("could not parse value of KeptnMetric {namespace}/{name} to float"),
            body: value.to_owned(),
        })?;
        not_nan(KIND, parsed)
    }

    async fn analysis(
        &self,
        namespace: &str,
        definition: &str,
        duration: &str,
        args: &BTreeMap<String, String>,
    ) -> Result<f64, ProviderError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource("Analysis", "analyses"));
        let object = analysis_object(namespace, definition, duration, args, &random_suffix());
        let request_error = |url: &str, reason: String| ProviderError::Request {
            provider: KIND,
            url: url.to_owned(),
            reason,
        };
        let object: DynamicObject = serde_json::from_value(object).map_err(|e| ProviderError::Client {
            provider: KIND,
            reason: format!("cannot build the Analysis: {e}"),
        })?;
        let created = api.create(&PostParams::default(), &object).await.map_err(|e| {
            request_error(
                &format!("analyses/{namespace}"),
                format!("could not create Keptn Analysis {namespace}/{definition}: {e}"),
            )
        })?;
        let name = created.metadata.name.clone().unwrap_or_default();
        let result = self.wait_for_result(&api, namespace, definition, &name).await;
        // Deleted whatever the outcome (Flagger logs a failed delete and keeps the result).
        let _ = api.delete(&name, &DeleteParams::default()).await;
        result
    }

    async fn wait_for_result(
        &self,
        api: &Api<DynamicObject>,
        namespace: &str,
        definition: &str,
        name: &str,
    ) -> Result<f64, ProviderError> {
        let url = format!("analyses/{namespace}/{name}");
        let check_error = |reason: String| ProviderError::Request {
            provider: KIND,
            url: url.clone(),
            reason: format!(
                "could not check status of created Keptn Analysis {namespace}/{definition}: {reason}"
            ),
        };
        let deadline = Instant::now() + self.analysis_timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining < ANALYSIS_POLL {
                tokio::time::sleep(remaining).await;
                return Err(ProviderError::Request {
                    provider: KIND,
                    url: url.clone(),
                    reason: format!(
                        "encountered timeout while waiting for Keptn Analysis {namespace}/{definition} to be finished"
                    ),
                });
            }
            tokio::time::sleep(ANALYSIS_POLL).await;
            let object =
                match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), api.get(name))
                    .await
                {
                    Ok(result) => result.map_err(|e| check_error(e.to_string()))?,
                    Err(_) => continue,
                };
            let state = match object.data.pointer("/status/state") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(other) => {
                    return Err(check_error(format!(
                        ".status.state accessor error: {other} is not a string"
                    )));
                }
            };
            if state != Some("Completed") {
                continue;
            }
            match object.data.pointer("/status/pass") {
                None | Some(Value::Null) => {}
                Some(Value::Bool(pass)) => return Ok(if *pass { 1.0 } else { 0.0 }),
                Some(other) => {
                    return Err(check_error(format!(
                        ".status.pass accessor error: {other} is not a bool"
                    )));
                }
            }
        }
    }
}

/// Go's `strconv.ParseFloat` on the value strings Keptn writes.
fn parse_go_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().trim_start_matches('+') {
        "nan" => Some(f64::NAN),
        // Only `+` is trimmed, so a match here never starts with `-`.
        "inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

impl MetricProvider for KeptnProvider {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run_query(&self, query: &str) -> impl Future<Output = Result<f64, ProviderError>> + Send {
        self.query(query)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert_eq!(
            parse_query("KeptnMetric/My-NS/Response-Time\n").unwrap(),
            KeptnQuery::Metric {
                namespace: "my-ns".into(),
                name: "response-time".into()
            }
        );
        assert_eq!(
            parse_query("analysis/ns/def").unwrap(),
            KeptnQuery::Analysis {
                namespace: "ns".into(),
                definition: "def".into(),
                duration: "1m".into(),
                args: BTreeMap::new()
            }
        );
        assert_eq!(
            parse_query("analyses/ns/def/2m/Reporter=destination;bad;a=b=c;x=1").unwrap(),
            KeptnQuery::Analysis {
                namespace: "ns".into(),
                definition: "def".into(),
                duration: "2m".into(),
                args: [
                    ("reporter".to_owned(), "destination".to_owned()),
                    ("x".into(), "1".into())
                ]
                .into_iter()
                .collect()
            }
        );
        assert_eq!(
            parse_query("invalid/default").unwrap_err().to_string(),
            format!("keptn: {FORMAT_ERROR}")
        );
        assert!(
            parse_query("invalid/default/x")
                .unwrap_err()
                .to_string()
                .contains("unexpected resource kind")
        );
    }

    #[test]
    fn resources_are_flaggers() {
        let analysis = resource("Analysis", "analyses");
        assert_eq!(analysis.api_version, "metrics.keptn.sh/v1beta1");
        assert_eq!(analysis.plural, "analyses");
        let metric = resource("KeptnMetric", "keptnmetrics");
        assert_eq!(metric.api_version, "metrics.keptn.sh/v1beta1");
        assert_eq!(metric.plural, "keptnmetrics");
    }

    #[test]
    fn suffixes_are_six_hex_characters() {
        let a = random_suffix();
        assert_eq!(a.len(), 6);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn go_floats() {
        assert_eq!(parse_go_float("3.0"), Some(3.0));
        assert_eq!(parse_go_float("-Inf"), Some(f64::NEG_INFINITY));
        assert!(parse_go_float("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_go_float("abc"), None);
    }
}
