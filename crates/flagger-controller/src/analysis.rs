//! The metric checks of an analysis tick: Flagger's `checkMetricProviderAvailability`
//! ([`Analysis::check_providers`]) and `runBuiltinMetricChecks` followed by `runMetricChecks`
//! ([`Analysis::run`]), with Flagger's event texts.
//!
//! What each check queries, and how its result is judged and worded, comes from `flagger_metrics`
//! (`plan`, the builtin queries, `render`, `evaluate`). This module resolves what the checks need — the
//! Prometheus of the builtin checks (`-metrics-server` or `spec.metricsServer`), MetricTemplates from the
//! watch cache, the Secrets of their providers and, for Knative, the latest created revision — runs the
//! queries in Flagger's order and stops at the first check that does not pass.
//!
//! MetricTemplate providers are built by [`AnyProvider::new`] from the template, its Secret and the metric's
//! interval (`1m` when the metric has none: Flagger fails those providers that parse it with `error parsing
//! metric interval`), and kept per configuration. A type Flagger does not know at all is queried as
//! Prometheus, with a warning, as Flagger does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use flagger_api::{Canary, CanaryMetric, CrossNamespaceObjectReference, MetricTemplate};
use flagger_core::machine::{Event, MetricsOutcome};
use flagger_core::provider::MeshProvider;
use flagger_metrics::outcome::{Planned, Severity, UNUSABLE_MESSAGE, plan};
use flagger_metrics::providers::{AnyProvider, ProviderKey, falls_back_to_prometheus};
use flagger_metrics::{
    BuiltinMetric, Check, CheckError, CheckKind, MetricModel, MetricProvider, Observer, PrometheusConfig,
    PrometheusProvider, ProviderError, ProviderInit, Verdict, evaluate, metrics_provider_key, render,
};
use flagger_telemetry::OperatorMetrics;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};

use crate::cache::Caches;

/// The provider types whose construction parses the metric interval in Flagger (their time window).
const INTERVAL_PROVIDERS: [&str; 5] = ["datadog", "cloudwatch", "newrelic", "dynatrace", "splunk"];

/// Clients kept per cache (one per configuration) before the cache starts over.
const PROVIDER_CACHE_LIMIT: usize = 64;

/// Why the metric checks cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// `-metrics-server` is not a usable Prometheus address (Flagger exits with the same message).
    #[error("Error building prometheus client: {0}")]
    MetricsServer(#[source] ProviderError),
}

/// Runs the metric checks of canaries. Cheap to clone: clones share the Prometheus clients.
#[derive(Clone)]
pub struct Analysis {
    client: Client,
    mesh_provider: MeshProvider,
    metrics_server: String,
    metrics: OperatorMetrics,
    /// Prometheus clients by configuration, so connections are reused from tick to tick.
    providers: Arc<Mutex<HashMap<PrometheusConfig, PrometheusProvider>>>,
    /// MetricTemplate providers by configuration (type, address, credentials, interval, ...).
    template_providers: Arc<Mutex<HashMap<ProviderKey, SharedProvider>>>,
}

impl std::fmt::Debug for Analysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analysis")
            .field("mesh_provider", &self.mesh_provider)
            .field("metrics_server", &self.metrics_server)
            .finish_non_exhaustive()
    }
}

impl Analysis {
    /// The metric checks of an operator started with `-mesh-provider=<mesh_provider>` and
    /// `-metrics-server=<metrics_server>`. `client` reads the Secrets of MetricTemplate providers; every
    /// value a check reads is recorded in `flagger_canary_metric_analysis` through `metrics`. Fails when
    /// `metrics_server` is not an http(s) URL, as Flagger refuses to start.
    pub fn new(
        client: Client,
        mesh_provider: MeshProvider,
        metrics_server: impl Into<String>,
        metrics: OperatorMetrics,
    ) -> Result<Self, AnalysisError> {
        let metrics_server = metrics_server.into();
        let config = PrometheusConfig::new(metrics_server.clone());
        let provider = PrometheusProvider::new(config.clone()).map_err(AnalysisError::MetricsServer)?;
        Ok(Self {
            client,
            mesh_provider,
            metrics_server,
            metrics,
            providers: Arc::new(Mutex::new(HashMap::from([(config, provider)]))),
            template_providers: Arc::default(),
        })
    }

    /// The `-metrics-server` address.
    pub fn metrics_server(&self) -> &str {
        &self.metrics_server
    }

    /// Whether `-metrics-server` answers (Flagger logs `Connected to metrics server <url>` or
    /// `Metrics server <url> unreachable <err>` at start-up).
    pub async fn check_metrics_server(&self) -> Result<(), ProviderError> {
        self.prometheus(&PrometheusConfig::new(self.metrics_server.clone()))?
            .is_online()
            .await
    }

    /// Whether the metric providers of `canary` answer (`Action::CheckMetricProviders`): the builtin
    /// metrics' Prometheus and each referenced MetricTemplate's provider. `Err` carries Flagger's text for
    /// the event `Error checking metric providers: <text>`.
    pub async fn check_providers(&self, canary: &Canary, caches: &Caches) -> Result<(), String> {
        let backend = ClusterBackend {
            analysis: self,
            caches,
        };
        check_providers_with(&backend, canary, &self.metrics_server).await
    }

    /// Runs the builtin and inline checks, then the MetricTemplate checks of `canary`, stopping at the
    /// first one that does not pass; its event (Flagger's text) is the only one returned.
    pub async fn run(&self, canary: &Canary, caches: &Caches) -> MetricsOutcome {
        let backend = ClusterBackend {
            analysis: self,
            caches,
        };
        // Flagger labels `flagger_canary_metric_analysis` with the target's name.
        let name = canary.spec.target_ref.name.clone();
        let namespace = canary.namespace().unwrap_or_default();
        run_with(
            &backend,
            canary,
            &self.mesh_provider,
            &self.metrics_server,
            |metric, value| self.metrics.set_analysis(&name, &namespace, metric, value),
        )
        .await
    }

    /// The client for `config`, built once per configuration.
    fn prometheus(&self, config: &PrometheusConfig) -> Result<PrometheusProvider, ProviderError> {
        let mut providers = self.providers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(provider) = providers.get(config) {
            return Ok(provider.clone());
        }
        let provider = PrometheusProvider::new(config.clone())?;
        if providers.len() >= PROVIDER_CACHE_LIMIT {
            providers.clear();
        }
        providers.insert(config.clone(), provider.clone());
        Ok(provider)
    }

    /// The MetricTemplate provider `init` describes, built once per configuration.
    fn template_provider(&self, init: &ProviderInit<'_>) -> Result<SharedProvider, ProviderError> {
        let key = ProviderKey::of(init);
        let mut providers = self
            .template_providers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(provider) = providers.get(&key) {
            return Ok(provider.clone());
        }
        let provider = SharedProvider(Arc::new(AnyProvider::new(init)?));
        if providers.len() >= PROVIDER_CACHE_LIMIT {
            providers.clear();
        }
        providers.insert(key, provider.clone());
        Ok(provider)
    }
}

/// A MetricTemplate provider shared by the checks that use the same configuration.
#[derive(Clone, Debug)]
struct SharedProvider(Arc<AnyProvider>);

impl MetricProvider for SharedProvider {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    fn run_query(&self, query: &str) -> impl Future<Output = Result<f64, ProviderError>> + Send {
        self.0.run_query(query)
    }

    fn is_online(&self) -> impl Future<Output = Result<(), ProviderError>> + Send {
        self.0.is_online()
    }
}

/// Where the checks get what they need: the cluster and real Prometheus servers, or fakes in unit tests.
trait Backend {
    /// The provider that runs Prometheus queries.
    type Provider: MetricProvider;

    /// The provider of MetricTemplates.
    type TemplateProvider: MetricProvider;

    /// The Prometheus client for `config`.
    fn prometheus(&self, config: &PrometheusConfig) -> Result<Self::Provider, ProviderError>;

    /// The provider of a MetricTemplate, with the operator's API client for those that need it.
    fn template_provider(&self, init: ProviderInit<'_>) -> Result<Self::TemplateProvider, ProviderError>;

    /// A MetricTemplate from the watch cache.
    fn metric_template(&self, namespace: &str, name: &str) -> Option<Arc<MetricTemplate>>;

    /// The data of a Secret; `Err` is the API's message, e.g. `secrets "creds" not found`.
    async fn secret_data(&self, namespace: &str, name: &str) -> Result<BTreeMap<String, Vec<u8>>, String>;

    /// `status.latestCreatedRevisionName` of a Knative Service; `Err` says why it cannot be read.
    async fn knative_revision(&self, namespace: &str, name: &str) -> Result<String, String>;
}

/// The real backend: watch caches, Secrets read from the API server, cached Prometheus clients.
struct ClusterBackend<'a> {
    analysis: &'a Analysis,
    caches: &'a Caches,
}

impl Backend for ClusterBackend<'_> {
    type Provider = PrometheusProvider;
    type TemplateProvider = SharedProvider;

    fn prometheus(&self, config: &PrometheusConfig) -> Result<PrometheusProvider, ProviderError> {
        self.analysis.prometheus(config)
    }

    fn template_provider(&self, init: ProviderInit<'_>) -> Result<SharedProvider, ProviderError> {
        self.analysis.template_provider(&ProviderInit {
            kube: Some(&self.analysis.client),
            ..init
        })
    }

    fn metric_template(&self, namespace: &str, name: &str) -> Option<Arc<MetricTemplate>> {
        self.caches.metric_template(namespace, name)
    }

    async fn secret_data(&self, namespace: &str, name: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
        // Flagger reads the Secret on every check too; Secrets are not watched (that would need list
        // access to every Secret in the watched namespaces).
        let api: Api<Secret> = Api::namespaced(self.analysis.client.clone(), namespace);
        let secret = api.get(name).await.map_err(|e| kube_error_text(&e))?;
        Ok(secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| (key, value.0))
            .collect())
    }

    async fn knative_revision(&self, namespace: &str, name: &str) -> Result<String, String> {
        let resource = crate::knative::service_resource();
        let store = self
            .caches
            .dynamic(&resource, true)
            .await
            .map_err(|e| e.to_string())?;
        let service = store
            .get(&ObjectRef::<DynamicObject>::new_with(name, resource).within(namespace))
            .ok_or_else(|| format!("services.serving.knative.dev {name:?} not found"))?;
        Ok(crate::knative::latest_revision(&service).unwrap_or_default())
    }
}

/// The API server's message for an API error (as client-go prints it: `secrets "x" not found`), else the
/// error itself.
fn kube_error_text(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// The Prometheus of the builtin and inline checks: `spec.metricsServer`, else `-metrics-server`.
fn builtin_server<'a>(canary: &'a Canary, metrics_server: &'a str) -> &'a str {
    canary
        .spec
        .metrics_server
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(metrics_server)
}

/// The metrics of `canary`'s analysis.
fn metrics_of(canary: &Canary) -> &[CanaryMetric] {
    canary.analysis().map(|a| a.metrics()).unwrap_or_default()
}

/// Flagger's `IsOnline` error of a `kind` provider. The providers whose check is a query (Prometheus,
/// Graphite) wrap a failed query as `running query failed: <err>`; the others return the error as is.
fn online_error(kind: &str, error: &ProviderError) -> String {
    match error {
        ProviderError::NotOnline { .. } => error.to_string(),
        other if matches!(kind, "prometheus" | "graphite") => format!("running query failed: {other}"),
        other => other.to_string(),
    }
}

/// The interval a MetricTemplate provider gets: the metric's `interval`, `1m` when it has none (Flagger's
/// bug: those providers fail with `error parsing metric interval`). An unparsable interval fails the
/// providers that use it, with Flagger's text; the others ignore it, as in Flagger.
fn provider_interval(metric: &CanaryMetric, type_: &str) -> Result<std::time::Duration, String> {
    match flagger_core::duration::parse_go_duration(metric.interval()) {
        Ok(interval) => Ok(interval),
        Err(e) if INTERVAL_PROVIDERS.contains(&type_) => Err(format!("error parsing metric interval: {e}")),
        Err(_) => Ok(std::time::Duration::from_secs(60)),
    }
}

/// A resolved MetricTemplate metric: the template, the namespace it was looked up in, and its provider.
struct TemplateProvider<P> {
    template: Arc<MetricTemplate>,
    namespace: String,
    provider: P,
}

/// Resolves the MetricTemplate of `reference` and builds its provider for `metric`, in Flagger's order: the
/// template from the cache, its Secret, then the provider. `Err` is Flagger's text after `Metric template `.
async fn template_provider<B: Backend>(
    backend: &B,
    canary_namespace: &str,
    metric: &CanaryMetric,
    reference: &CrossNamespaceObjectReference,
) -> Result<TemplateProvider<B::TemplateProvider>, String> {
    let name = &reference.name;
    let namespace = reference.namespace_or(canary_namespace).to_owned();
    let template = backend
        .metric_template(&namespace, name)
        .ok_or_else(|| format!("{name}.{namespace} error: metrictemplate.flagger.app {name:?} not found"))?;
    let spec = &template.spec.provider;
    let secret = match &spec.secret_ref {
        Some(secret_ref) => Some(
            backend
                .secret_data(&namespace, &secret_ref.name)
                .await
                .map_err(|e| format!("{name}.{namespace} secret {} error: {e}", secret_ref.name))?,
        ),
        None => None,
    };
    let type_ = spec.type_.as_str();
    let provider_error = |e: String| format!("{name}.{namespace} provider {type_} error: {e}");
    if falls_back_to_prometheus(type_) {
        tracing::warn!("unknown metrics provider '{type_}', using prometheus");
    }
    let interval = provider_interval(metric, type_).map_err(provider_error)?;
    let credentials = secret.unwrap_or_default();
    let provider = backend
        .template_provider(ProviderInit {
            provider: spec,
            credentials: &credentials,
            interval,
            kube: None,
        })
        .map_err(|e| provider_error(e.to_string()))?;
    Ok(TemplateProvider {
        template,
        namespace,
        provider,
    })
}

/// Flagger's `checkMetricProviderAvailability`.
async fn check_providers_with<B: Backend>(
    backend: &B,
    canary: &Canary,
    metrics_server: &str,
) -> Result<(), String> {
    let namespace = canary.namespace().unwrap_or_default();
    let mut prometheus_online = false;
    for metric in metrics_of(canary) {
        if BuiltinMetric::from_name(&metric.name).is_some() {
            // Flagger asks once per builtin metric; the answer is the same.
            if !prometheus_online {
                let server = builtin_server(canary, metrics_server);
                let provider = backend
                    .prometheus(&PrometheusConfig::new(server))
                    .map_err(|e| format!("error building Prometheus client for {server} {e}"))?;
                provider
                    .is_online()
                    .await
                    .map_err(|e| format!("prometheus not avaiable: {}", online_error("prometheus", &e)))?;
                prometheus_online = true;
            }
            continue;
        }
        if let Some(reference) = &metric.template_ref {
            let resolved = template_provider(backend, &namespace, metric, reference)
                .await
                .map_err(|e| format!("metric template {e}"))?;
            resolved.provider.is_online().await.map_err(|e| {
                format!(
                    "{} in metric template {}.{} not avaiable: {}",
                    resolved.template.spec.provider.type_,
                    resolved.template.name_any(),
                    resolved.template.namespace().unwrap_or(resolved.namespace),
                    online_error(resolved.provider.kind(), &e)
                )
            })?;
        }
    }
    Ok(())
}

/// The outcome of a failed check with its event (Flagger's `recordEventWarningf`/`recordEventErrorf`: both
/// are Warning events; the severity only decides the log level).
fn failed(severity: Severity, message: String) -> MetricsOutcome {
    tracing::debug!(?severity, %message, "metric check did not pass");
    MetricsOutcome {
        passed: false,
        events: vec![Event::warning(message)],
    }
}

/// The event of a verdict that did not pass.
fn verdict_event(verdict: &Verdict) -> (Severity, String) {
    verdict
        .event
        .clone()
        .unwrap_or_else(|| (Severity::Warning, verdict.summary.clone()))
}

/// Whether Flagger reads the canary's Knative Service for `{{ route }}`.
fn uses_knative(canary: &Canary, mesh_provider: &MeshProvider) -> bool {
    canary.spec.provider.as_deref() == Some("knative") || *mesh_provider == MeshProvider::Knative
}

/// Flagger's `runBuiltinMetricChecks` then `runMetricChecks`; `record` receives every value a query
/// returned (`flagger_canary_metric_analysis`, durations in seconds).
async fn run_with<B: Backend>(
    backend: &B,
    canary: &Canary,
    mesh_provider: &MeshProvider,
    metrics_server: &str,
    mut record: impl FnMut(&str, f64),
) -> MetricsOutcome {
    let metrics = metrics_of(canary);
    let planned = plan(metrics);
    if planned.is_empty() {
        return MetricsOutcome {
            passed: true,
            events: Vec::new(),
        };
    }
    let namespace = canary.namespace().unwrap_or_default();
    let target = &canary.spec.target_ref.name;
    let route = if uses_knative(canary, mesh_provider) {
        match backend.knative_revision(&namespace, target).await {
            Ok(revision) => Some(revision),
            Err(e) => {
                return failed(
                    Severity::Error,
                    format!("Error fetching Knative service {namespace}/{target} {e}"),
                );
            }
        }
    } else {
        None
    };
    let model = |metric: &CanaryMetric| {
        let model = MetricModel::new(canary, metric);
        match &route {
            Some(revision) => model.with_route(revision.clone()),
            None => model,
        }
    };
    let provider_key = metrics_provider_key(&mesh_provider.to_string(), canary);
    let mut builtin_provider: Option<B::Provider> = None;

    for step in planned {
        let index = match step {
            Planned::Builtin(i, _) | Planned::Query(i) | Planned::Template(i) | Planned::Unusable(i) => i,
        };
        let Some(metric) = metrics.get(index) else {
            continue;
        };
        let verdict = match step {
            Planned::Builtin(..) | Planned::Query(_) => {
                let provider = match &mut builtin_provider {
                    Some(provider) => provider,
                    empty @ None => {
                        let server = builtin_server(canary, metrics_server);
                        match backend.prometheus(&PrometheusConfig::new(server)) {
                            Ok(provider) => empty.insert(provider),
                            Err(e) => {
                                return failed(
                                    Severity::Error,
                                    format!("Error building Prometheus client for {server} {e}"),
                                );
                            }
                        }
                    }
                };
                let (kind, query) = match step {
                    Planned::Builtin(_, builtin) => {
                        let observer = Observer::for_key(&provider_key);
                        let kind = CheckKind::Builtin {
                            metric: builtin,
                            observer,
                            provider_key: provider_key.clone(),
                        };
                        (kind, observer.query(builtin, &model(metric)))
                    }
                    _ => (
                        CheckKind::Query,
                        render(metric.query.as_deref().unwrap_or_default(), &model(metric)),
                    ),
                };
                let result = match query {
                    Ok(query) => provider.run_query(&query).await.map_err(CheckError::from),
                    Err(e) => Err(CheckError::from(e)),
                };
                evaluate(&Check::new(kind, canary, metric), result)
            }
            Planned::Template(_) => {
                let Some(reference) = &metric.template_ref else {
                    continue;
                };
                let resolved = match template_provider(backend, &namespace, metric, reference).await {
                    Ok(resolved) => resolved,
                    Err(e) => return failed(Severity::Error, format!("Metric template {e}")),
                };
                let result = match render(&resolved.template.spec.query, &model(metric)) {
                    Ok(query) => {
                        tracing::debug!(
                            canary = %format!("{}.{namespace}", canary.name_any()),
                            "Metric template {}.{} query: {query}",
                            reference.name,
                            resolved.namespace
                        );
                        resolved
                            .provider
                            .run_query(&query)
                            .await
                            .map_err(CheckError::from)
                    }
                    Err(e) => Err(CheckError::from(e)),
                };
                let kind = CheckKind::Template {
                    name: reference.name.clone(),
                    namespace: resolved.namespace,
                };
                evaluate(&Check::new(kind, canary, metric), result)
            }
            Planned::Unusable(_) => return failed(Severity::Error, UNUSABLE_MESSAGE.to_owned()),
        };
        if let Some(value) = verdict.analysis_value {
            record(&metric.name, value);
        }
        tracing::debug!(
            canary = %format!("{}.{namespace}", canary.name_any()),
            metric = %metric.name,
            outcome = verdict.outcome.as_str(),
            "{}",
            verdict.summary
        );
        if !verdict.outcome.is_pass() {
            let (severity, message) = verdict_event(&verdict);
            return failed(severity, message);
        }
    }
    MetricsOutcome {
        passed: true,
        events: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use flagger_metrics::provider::NoDataReason;

    use super::*;

    /// What the fake Prometheus answers to a query.
    #[derive(Clone, Copy, Debug)]
    enum Reply {
        Value(f64),
        NoData,
        BadRequest,
        Refused,
    }

    impl Reply {
        fn result(self, address: &str) -> Result<f64, ProviderError> {
            match self {
                Self::Value(v) => Ok(v),
                Self::NoData => Err(ProviderError::NoValues {
                    provider: "prometheus",
                    reason: NoDataReason::Empty,
                }),
                Self::BadRequest => Err(ProviderError::Status {
                    provider: "prometheus",
                    status: 400,
                    status_text: "Bad Request".into(),
                    body: "bad".into(),
                }),
                Self::Refused => Err(ProviderError::Request {
                    provider: "prometheus",
                    url: format!("{address}/api/v1/query"),
                    reason: "connection refused".into(),
                }),
            }
        }
    }

    #[derive(Default)]
    struct State {
        /// (query substring, reply): the first match answers; no match is no data.
        replies: Vec<(String, Reply)>,
        /// Addresses whose online check fails with this reply (a value is "not 1").
        offline: HashMap<String, Reply>,
        /// Every query sent, with the address and the provider configuration.
        sent: Mutex<Vec<(PrometheusConfig, String)>>,
        /// The interval of every MetricTemplate provider built.
        intervals: Mutex<Vec<std::time::Duration>>,
    }

    #[derive(Default)]
    struct Fake {
        state: Arc<State>,
        templates: HashMap<(String, String), Arc<MetricTemplate>>,
        secrets: HashMap<(String, String), BTreeMap<String, Vec<u8>>>,
        knative: Option<Result<String, String>>,
    }

    struct FakeProvider {
        state: Arc<State>,
        config: PrometheusConfig,
    }

    impl MetricProvider for FakeProvider {
        fn kind(&self) -> &'static str {
            "prometheus"
        }

        fn run_query(&self, query: &str) -> impl Future<Output = Result<f64, ProviderError>> + Send {
            self.state
                .sent
                .lock()
                .unwrap()
                .push((self.config.clone(), query.to_owned()));
            let reply = self
                .state
                .replies
                .iter()
                .find(|(part, _)| query.contains(part.as_str()))
                .map_or(Reply::NoData, |(_, reply)| *reply);
            std::future::ready(reply.result(&self.config.address))
        }

        fn is_online(&self) -> impl Future<Output = Result<(), ProviderError>> + Send {
            let result = match self.state.offline.get(&self.config.address) {
                None => Ok(()),
                Some(Reply::Value(v)) => Err(ProviderError::NotOnline {
                    provider: "prometheus",
                    detail: format!("value is {v}, not 1, for query: vector(1)"),
                }),
                Some(reply) => reply.result(&self.config.address).map(|_| ()),
            };
            std::future::ready(result)
        }
    }

    impl Backend for Fake {
        type Provider = FakeProvider;
        type TemplateProvider = FakeProvider;

        fn prometheus(&self, config: &PrometheusConfig) -> Result<FakeProvider, ProviderError> {
            // The real client's validation of the address, headers and credentials.
            PrometheusProvider::new(config.clone())?;
            Ok(FakeProvider {
                state: self.state.clone(),
                config: config.clone(),
            })
        }

        fn template_provider(&self, init: ProviderInit<'_>) -> Result<FakeProvider, ProviderError> {
            // The real provider's validation of the template, credentials and interval; the fake answers
            // at the template's address.
            AnyProvider::new(&init)?;
            self.state.intervals.lock().unwrap().push(init.interval);
            Ok(FakeProvider {
                state: self.state.clone(),
                config: PrometheusConfig::from_template(init.provider, Some(init.credentials))
                    .unwrap_or_else(|_| {
                        PrometheusConfig::new(init.provider.address.clone().unwrap_or_default())
                    }),
            })
        }

        fn metric_template(&self, namespace: &str, name: &str) -> Option<Arc<MetricTemplate>> {
            self.templates
                .get(&(namespace.to_owned(), name.to_owned()))
                .cloned()
        }

        async fn secret_data(
            &self,
            namespace: &str,
            name: &str,
        ) -> Result<BTreeMap<String, Vec<u8>>, String> {
            self.secrets
                .get(&(namespace.to_owned(), name.to_owned()))
                .cloned()
                .ok_or_else(|| format!("secrets {name:?} not found"))
        }

        async fn knative_revision(&self, _namespace: &str, name: &str) -> Result<String, String> {
            self.knative
                .clone()
                .unwrap_or_else(|| Err(format!("services.serving.knative.dev {name:?} not found")))
        }
    }

    const SERVER: &str = "http://prometheus:9090";

    impl Fake {
        fn reply(mut self, part: &str, reply: Reply) -> Self {
            Arc::get_mut(&mut self.state)
                .unwrap()
                .replies
                .push((part.to_owned(), reply));
            self
        }

        fn offline(mut self, address: &str, reply: Reply) -> Self {
            Arc::get_mut(&mut self.state)
                .unwrap()
                .offline
                .insert(address.to_owned(), reply);
            self
        }

        fn template(mut self, namespace: &str, name: &str, spec: serde_json::Value) -> Self {
            let template: MetricTemplate = serde_json::from_value(serde_json::json!({
                "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
            }))
            .unwrap();
            self.templates
                .insert((namespace.to_owned(), name.to_owned()), Arc::new(template));
            self
        }

        fn secret(mut self, namespace: &str, name: &str, data: &[(&str, &str)]) -> Self {
            let data = data
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
                .collect();
            self.secrets.insert((namespace.to_owned(), name.to_owned()), data);
            self
        }

        fn sent(&self) -> Vec<(PrometheusConfig, String)> {
            self.state.sent.lock().unwrap().clone()
        }

        fn queries(&self) -> Vec<String> {
            self.sent().into_iter().map(|(_, q)| q).collect()
        }

        async fn run(&self, canary: &Canary, mesh: MeshProvider) -> (MetricsOutcome, Vec<(String, f64)>) {
            let mut values = Vec::new();
            let outcome = run_with(self, canary, &mesh, SERVER, |m, v| values.push((m.to_owned(), v))).await;
            (outcome, values)
        }

        async fn run_k8s(&self, canary: &Canary) -> MetricsOutcome {
            self.run(canary, MeshProvider::Kubernetes).await.0
        }

        async fn check(&self, canary: &Canary) -> Result<(), String> {
            check_providers_with(self, canary, SERVER).await
        }
    }

    /// Canary `podinfo` in `test` targeting Deployment `podinfo-deploy` with `metrics`, plus `spec` fields.
    fn canary_with(metrics: serde_json::Value, spec: serde_json::Value) -> Canary {
        let mut json = serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo-deploy"},
                "service": {"port": 80},
                "analysis": {"interval": "1m", "threshold": 5, "metrics": metrics}
            }
        });
        if let (Some(target), Some(extra)) = (json["spec"].as_object_mut(), spec.as_object()) {
            target.extend(extra.clone());
        }
        serde_json::from_value(json).unwrap()
    }

    fn canary(metrics: serde_json::Value) -> Canary {
        canary_with(metrics, serde_json::json!({}))
    }

    fn messages(outcome: &MetricsOutcome) -> Vec<&str> {
        outcome.events.iter().map(|e| e.message.as_str()).collect()
    }

    /// The kubernetes observer's queries: success rate on `_count`, duration on `_bucket`.
    const SUCCESS: &str = "http_request_duration_seconds_count";
    const DURATION: &str = "http_request_duration_seconds_bucket";

    fn builtins(min: f64, max_ms: f64) -> serde_json::Value {
        serde_json::json!([
            {"name": "request-success-rate", "thresholdRange": {"min": min}},
            {"name": "request-duration", "thresholdRange": {"max": max_ms}},
        ])
    }

    #[tokio::test]
    async fn no_metrics_pass_without_queries() {
        let fake = Fake::default();
        let outcome = fake.run_k8s(&canary(serde_json::json!([]))).await;
        assert_eq!(
            outcome,
            MetricsOutcome {
                passed: true,
                events: vec![]
            }
        );
        let no_analysis: Canary = serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}, "service": {"port": 80}}
        }))
        .unwrap();
        assert!(fake.run_k8s(&no_analysis).await.passed);
        assert_eq!(fake.check(&no_analysis).await, Ok(()));
        assert!(fake.sent().is_empty());
    }

    #[tokio::test]
    async fn passing_builtins_record_their_values() {
        let fake = Fake::default()
            .reply(SUCCESS, Reply::Value(99.5))
            .reply(DURATION, Reply::Value(0.2485));
        let (outcome, values) = fake
            .run(&canary(builtins(99.0, 500.0)), MeshProvider::Kubernetes)
            .await;
        assert!(outcome.passed, "{outcome:?}");
        assert!(outcome.events.is_empty());
        assert_eq!(
            values,
            vec![
                ("request-success-rate".to_owned(), 99.5),
                ("request-duration".to_owned(), 0.248)
            ]
        );
        let sent = fake.sent();
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|(config, _)| config.address == SERVER));
        // The kubernetes observer's query, rendered for this canary.
        assert!(
            sent[0].1.contains(r#"kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-deploy-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)""#),
            "{}",
            sent[0].1
        );
        assert!(sent[0].1.contains("[1m]"), "{}", sent[0].1);
    }

    #[tokio::test]
    async fn the_first_failing_check_stops_the_analysis() {
        let fake = Fake::default()
            .reply(SUCCESS, Reply::Value(87.5))
            .reply(DURATION, Reply::Value(0.2485));
        let (outcome, values) = fake
            .run(&canary(builtins(99.0, 500.0)), MeshProvider::Kubernetes)
            .await;
        assert!(!outcome.passed);
        assert_eq!(
            messages(&outcome),
            ["Halt podinfo.test advancement success rate 87.50% < 99%"]
        );
        assert_eq!(outcome.events[0].type_, flagger_core::machine::EventType::Warning);
        // The failing value is still recorded; the duration is never queried.
        assert_eq!(values, vec![("request-success-rate".to_owned(), 87.5)]);
        assert_eq!(fake.sent().len(), 1);

        let fake = Fake::default()
            .reply(SUCCESS, Reply::Value(100.0))
            .reply(DURATION, Reply::Value(1.5123));
        let outcome = fake.run_k8s(&canary(builtins(99.0, 500.0))).await;
        assert_eq!(
            messages(&outcome),
            ["Halt podinfo.test advancement request duration 1.512s > 500ms"]
        );
    }

    #[tokio::test]
    async fn no_data_and_query_errors_use_flaggers_texts() {
        let fake = Fake::default().reply(DURATION, Reply::Value(0.1));
        let outcome = fake.run_k8s(&canary(builtins(99.0, 500.0))).await;
        assert_eq!(
            messages(&outcome),
            [
                "Halt advancement no values found for kubernetes metric request-success-rate probably \
              podinfo-deploy.test is not receiving traffic: running query failed: no values found"
            ]
        );
        let fake = Fake::default().reply(SUCCESS, Reply::Value(100.0));
        let outcome = fake
            .run(&canary(builtins(99.0, 500.0)), MeshProvider::Istio)
            .await
            .0;
        // Istio's query has other metric names: no data for both; the first is reported.
        assert!(
            messages(&outcome)[0]
                .starts_with("Halt advancement no values found for istio metric request-success-rate")
        );
        let fake = Fake::default()
            .reply(SUCCESS, Reply::Value(100.0))
            .reply(DURATION, Reply::NoData);
        let outcome = fake.run_k8s(&canary(builtins(99.0, 500.0))).await;
        assert_eq!(
            messages(&outcome),
            [
                "Halt advancement no values found for kubernetes metric request-duration probably podinfo-deploy.test \
              is not receiving traffic"
            ]
        );
        let fake = Fake::default().reply(SUCCESS, Reply::BadRequest);
        let outcome = fake.run_k8s(&canary(builtins(99.0, 500.0))).await;
        assert_eq!(
            messages(&outcome),
            ["Prometheus query failed: prometheus: error response: Status 400 Bad Request: bad"]
        );
    }

    #[tokio::test]
    async fn the_provider_key_follows_spec_provider_and_service_targets() {
        let fake = Fake::default();
        let mut c = canary_with(
            serde_json::json!([{"name": "request-duration", "threshold": 500}]),
            serde_json::json!({"provider": "istio"}),
        );
        let outcome = fake.run_k8s(&c).await;
        assert!(
            messages(&outcome)[0].contains("no values found for istio metric request-duration"),
            "{outcome:?}"
        );
        assert!(fake.queries()[0].contains("istio_request_duration_milliseconds_bucket{"));
        c.spec.target_ref.kind = "Service".into();
        c.spec.target_ref.api_version = "v1".into();
        let outcome = fake.run_k8s(&c).await;
        assert!(
            messages(&outcome)[0].contains("no values found for istio:service metric request-duration"),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn spec_metrics_server_replaces_the_flag() {
        let fake = Fake::default().reply(SUCCESS, Reply::Value(100.0));
        let c = canary_with(
            serde_json::json!([{"name": "request-success-rate", "thresholdRange": {"min": 99}}]),
            serde_json::json!({"metricsServer": "http://other:9090"}),
        );
        assert!(fake.run_k8s(&c).await.passed);
        assert_eq!(fake.sent()[0].0.address, "http://other:9090");

        let c = canary_with(
            serde_json::json!([{"name": "request-success-rate", "thresholdRange": {"min": 99}}]),
            serde_json::json!({"metricsServer": "ftp://other"}),
        );
        let outcome = fake.run_k8s(&c).await;
        assert_eq!(
            messages(&outcome),
            [
                "Error building Prometheus client for ftp://other prometheus address \"ftp://other\" is not a valid \
              URL: scheme \"ftp\" is not http or https"
            ]
        );
        assert_eq!(
            fake.check(&c).await,
            Err("error building Prometheus client for ftp://other prometheus address \"ftp://other\" is not a \
                 valid URL: scheme \"ftp\" is not http or https"
                .to_owned())
        );
    }

    #[tokio::test]
    async fn inline_queries_render_and_use_the_builtin_prometheus() {
        let fake = Fake::default().reply("errors_total", Reply::Value(3.2));
        let c = canary(serde_json::json!([{
            "name": "errors", "query": "sum(errors_total{namespace=\"{{ namespace }}\",app=\"{{ target }}\"})",
            "thresholdRange": {"max": 1}
        }]));
        let outcome = fake.run_k8s(&c).await;
        assert_eq!(
            messages(&outcome),
            ["Halt podinfo.test advancement errors 3.20 > 1"]
        );
        assert_eq!(
            fake.sent()[0],
            (
                PrometheusConfig::new(SERVER),
                "sum(errors_total{namespace=\"test\",app=\"podinfo-deploy\"})".to_owned()
            )
        );
        let outcome = Fake::default().run_k8s(&c).await;
        assert_eq!(
            messages(&outcome),
            ["Halt advancement no values found for metric: errors"]
        );
        let outcome = Fake::default()
            .reply("errors_total", Reply::BadRequest)
            .run_k8s(&c)
            .await;
        assert_eq!(
            messages(&outcome),
            ["Prometheus query failed for errors: prometheus: error response: Status 400 Bad Request: bad"]
        );
    }

    fn prometheus_template(query: &str) -> serde_json::Value {
        serde_json::json!({"provider": {"type": "prometheus", "address": "http://tpl-prom:9090"}, "query": query})
    }

    #[tokio::test]
    async fn templates_render_variables_and_judge_the_value() {
        let fake = Fake::default()
            .template(
                "test",
                "error-rate",
                prometheus_template(
                    "sum(rate(errs{ns=\"{{ namespace }}\",svc=\"{{ service }}\",code=~\"{{ variables.code }}\"}[{{ interval }}]))",
                ),
            )
            .reply("sum(rate(errs", Reply::Value(3.2));
        let metric = |range: serde_json::Value| {
            canary(serde_json::json!([{
                "name": "error-rate", "interval": "30s",
                "templateRef": {"name": "error-rate"},
                "templateVariables": {"code": "5.."},
                "thresholdRange": range
            }]))
        };
        let (outcome, values) = fake
            .run(&metric(serde_json::json!({"max": 5})), MeshProvider::Kubernetes)
            .await;
        assert!(outcome.passed, "{outcome:?}");
        assert_eq!(values, vec![("error-rate".to_owned(), 3.2)]);
        let (config, query) = &fake.sent()[0];
        assert_eq!(config.address, "http://tpl-prom:9090");
        assert_eq!(
            query,
            "sum(rate(errs{ns=\"test\",svc=\"podinfo-deploy\",code=~\"5..\"}[30s]))"
        );
        let outcome = fake.run_k8s(&metric(serde_json::json!({"max": 1}))).await;
        assert_eq!(
            messages(&outcome),
            ["Halt podinfo.test advancement error-rate 3.20 > 1"]
        );
        let outcome = fake
            .run_k8s(&metric(serde_json::json!({"min": 4, "max": 10})))
            .await;
        assert_eq!(
            messages(&outcome),
            ["Halt podinfo.test advancement error-rate 3.20 < 4"]
        );
    }

    #[tokio::test]
    async fn template_failures_use_flaggers_texts() {
        let metric = |template: &str| {
            canary(serde_json::json!([{"name": "custom", "templateRef": {"name": template}, "threshold": 1}]))
        };
        let fake = Fake::default()
            .template("test", "nodata", prometheus_template("nothing_here"))
            .template(
                "test",
                "broken",
                prometheus_template("x{a=\"{{ variables.missing }}\"}"),
            )
            .template("test", "bad", prometheus_template("bad_query"))
            .reply("bad_query", Reply::BadRequest)
            .template(
                "test",
                "dd",
                serde_json::json!({"provider": {"type": "datadog"}, "query": "avg:x{*}"}),
            )
            .template(
                "test",
                "noaddr",
                serde_json::json!({"provider": {"type": "prometheus"}, "query": "up"}),
            );
        let cases = [
            (
                "missing",
                "Metric template missing.test error: metrictemplate.flagger.app \"missing\" not found",
            ),
            (
                "nodata",
                "Halt advancement no values found for custom metric: custom: no values found",
            ),
            (
                "bad",
                "Metric query failed for custom: prometheus: error response: Status 400 Bad Request: bad",
            ),
            (
                "dd",
                "Metric template dd.test provider datadog error: datadog credentials does not contain datadog_api_key",
            ),
            (
                "noaddr",
                "Metric template noaddr.test provider prometheus error: prometheus address \"\" is not a valid URL: \
                 relative URL without a base",
            ),
        ];
        for (template, expected) in cases {
            let outcome = fake.run_k8s(&metric(template)).await;
            assert!(!outcome.passed);
            assert_eq!(messages(&outcome), [expected], "template {template}");
        }
        let outcome = fake.run_k8s(&metric("broken")).await;
        assert!(
            messages(&outcome)[0].starts_with(
                "Metric template broken.test query render error: map has no entry for key \"missing\""
            ),
            "{outcome:?}"
        );
        // Neither builtin, query nor template.
        let outcome = fake
            .run_k8s(&canary(serde_json::json!([{"name": "custom"}])))
            .await;
        assert_eq!(
            messages(&outcome),
            ["Metric query failed for no usable metrics template and query were configured"]
        );
        // Only the "bad" template was sent to a server.
        assert_eq!(fake.queries(), ["nothing_here", "bad_query"]);
    }

    #[tokio::test]
    async fn templates_are_looked_up_in_their_namespace_with_their_secret() {
        let spec = serde_json::json!({
            "provider": {"type": "prometheus", "address": "http://tpl-prom:9090", "secretRef": {"name": "creds"}},
            "query": "up"
        });
        let metric = canary(serde_json::json!([{
            "name": "up", "templateRef": {"name": "t", "namespace": "ops"}, "thresholdRange": {"min": 1}
        }]));
        let fake = Fake::default()
            .template("ops", "t", spec.clone())
            .reply("up", Reply::Value(1.0));
        assert_eq!(
            messages(&fake.run_k8s(&metric).await),
            ["Metric template t.ops secret creds error: secrets \"creds\" not found"]
        );
        assert_eq!(
            fake.check(&metric).await,
            Err("metric template t.ops secret creds error: secrets \"creds\" not found".to_owned())
        );
        // The Secret is read from the template's namespace, not the canary's.
        let fake = fake.secret("test", "creds", &[("token", "t0k")]);
        assert!(!fake.run_k8s(&metric).await.passed);
        let fake = fake.secret("ops", "creds", &[("username", "u")]);
        assert_eq!(
            messages(&fake.run_k8s(&metric).await),
            [
                "Metric template t.ops provider prometheus error: prometheus credentials does not contain a password"
            ]
        );
        let fake = fake.secret("ops", "creds", &[("token", "t0k")]);
        assert!(fake.run_k8s(&metric).await.passed);
        let sent = fake.sent();
        assert_eq!(
            sent.last().and_then(|(c, _)| c.auth.clone()),
            Some(flagger_metrics::PrometheusAuth::Bearer("t0k".into()))
        );
        // An empty templateRef namespace is the canary's.
        let fake = Fake::default()
            .template("test", "t", prometheus_template("up"))
            .reply("up", Reply::Value(1.0));
        let c = canary(serde_json::json!([{
            "name": "up", "templateRef": {"name": "t", "namespace": ""}, "thresholdRange": {"min": 1}
        }]));
        assert!(fake.run_k8s(&c).await.passed);
    }

    #[tokio::test]
    async fn unknown_provider_types_are_queried_as_prometheus() {
        let fake = Fake::default()
            .template(
                "test",
                "t",
                serde_json::json!({"provider": {"type": "mystery", "address": "http://p:9090"}, "query": "up"}),
            )
            .reply("up", Reply::Value(0.5));
        let c = canary(serde_json::json!([{"name": "up", "templateRef": {"name": "t"}, "threshold": 1}]));
        assert!(fake.run_k8s(&c).await.passed);
        assert_eq!(fake.check(&c).await, Ok(()));
    }

    #[tokio::test]
    async fn builtin_and_inline_checks_run_before_templates() {
        let fake = Fake::default()
            .template("test", "t", prometheus_template("template_query"))
            .reply("template_query", Reply::Value(0.0))
            .reply(SUCCESS, Reply::Value(50.0));
        let c = canary(serde_json::json!([
            {"name": "custom", "templateRef": {"name": "t"}},
            {"name": "request-success-rate", "thresholdRange": {"min": 99}},
        ]));
        let outcome = fake.run_k8s(&c).await;
        assert_eq!(
            messages(&outcome),
            ["Halt podinfo.test advancement success rate 50.00% < 99%"]
        );
        assert_eq!(fake.sent().len(), 1, "the template never ran");
    }

    #[tokio::test]
    async fn knative_canaries_query_the_latest_created_revision() {
        let c = canary_with(
            serde_json::json!([{"name": "hits", "templateRef": {"name": "t"}, "threshold": 10}]),
            serde_json::json!({"provider": "knative"}),
        );
        let fake = Fake::default()
            .template("test", "t", prometheus_template("hits{route=\"{{ route }}\"}"))
            .reply("hits", Reply::Value(1.0));
        assert_eq!(
            messages(&fake.run_k8s(&c).await),
            [
                "Error fetching Knative service test/podinfo-deploy services.serving.knative.dev \"podinfo-deploy\" not \
              found"
            ]
        );
        let fake = Fake {
            knative: Some(Ok("podinfo-00002".into())),
            ..fake
        };
        assert!(fake.run_k8s(&c).await.passed);
        assert_eq!(fake.queries(), ["hits{route=\"podinfo-00002\"}"]);
        // The flag alone selects Knative too; other providers never read the Service.
        assert!(uses_knative(
            &canary(serde_json::json!([])),
            &MeshProvider::Knative
        ));
        assert!(uses_knative(&c, &MeshProvider::Istio));
        assert!(!uses_knative(
            &canary(serde_json::json!([])),
            &MeshProvider::Istio
        ));
    }

    #[tokio::test]
    async fn provider_availability_uses_flaggers_texts() {
        let builtin = canary(builtins(99.0, 500.0));
        assert_eq!(Fake::default().check(&builtin).await, Ok(()));
        let fake = Fake::default().offline(SERVER, Reply::Refused);
        assert_eq!(
            fake.check(&builtin).await,
            Err(
                "prometheus not avaiable: running query failed: prometheus: request to \
                 http://prometheus:9090/api/v1/query failed: connection refused"
                    .to_owned()
            )
        );
        let fake = Fake::default().offline(SERVER, Reply::Value(0.0));
        assert_eq!(
            fake.check(&builtin).await,
            Err(
                "prometheus not avaiable: prometheus: not online: value is 0, not 1, for query: vector(1)"
                    .to_owned()
            )
        );

        let c = |template: &str| {
            canary(serde_json::json!([
                {"name": "custom", "templateRef": {"name": template, "namespace": "ops"}},
                {"name": "inline", "query": "up"},
            ]))
        };
        let fake = Fake::default()
            .template("ops", "t", prometheus_template("up"))
            .template(
                "ops",
                "dd",
                serde_json::json!({"provider": {"type": "datadog"}, "query": "x"}),
            )
            .offline("http://tpl-prom:9090", Reply::Refused);
        assert_eq!(
            fake.check(&c("t")).await,
            Err("prometheus in metric template t.ops not avaiable: running query failed: prometheus: request to \
                 http://tpl-prom:9090/api/v1/query failed: connection refused"
                .to_owned())
        );
        assert_eq!(
            fake.check(&c("missing")).await,
            Err(
                "metric template missing.ops error: metrictemplate.flagger.app \"missing\" not found"
                    .to_owned()
            )
        );
        assert!(fake.check(&c("dd")).await.is_err_and(|e| e.starts_with(
            "metric template dd.ops provider datadog error: datadog credentials does not contain datadog_api_key"
        )));
        // Builtin names run the builtin check only, even with a templateRef (as in Flagger).
        let both = canary(serde_json::json!([
            {"name": "request-duration", "templateRef": {"name": "missing"}, "threshold": 500}
        ]));
        assert_eq!(fake.check(&both).await, Ok(()));
        // Inline queries are not checked; nothing was queried at all.
        assert!(fake.sent().is_empty());
    }

    #[tokio::test]
    async fn template_providers_get_the_metric_interval_or_the_default() {
        let dd = serde_json::json!({
            "provider": {"type": "datadog", "address": "http://dd:8080", "secretRef": {"name": "dd"}},
            "query": "avg:x{*}"
        });
        let fake = Fake::default()
            .template("test", "dd", dd)
            .template("test", "prom", prometheus_template("up"))
            .secret(
                "test",
                "dd",
                &[("datadog_api_key", "a"), ("datadog_application_key", "b")],
            )
            .reply("avg:x", Reply::Value(0.5))
            .reply("up", Reply::Value(0.5));
        let metric = |template: &str, interval: Option<&str>| {
            let mut m =
                serde_json::json!({"name": "custom", "templateRef": {"name": template}, "threshold": 1});
            if let Some(i) = interval {
                m["interval"] = i.into();
            }
            canary(serde_json::json!([m]))
        };
        // Flagger fails here (`error parsing metric interval`); the default 1m is used.
        assert!(fake.run_k8s(&metric("dd", None)).await.passed);
        assert!(fake.run_k8s(&metric("dd", Some("30s"))).await.passed);
        assert_eq!(
            *fake.state.intervals.lock().unwrap(),
            [
                std::time::Duration::from_secs(60),
                std::time::Duration::from_secs(30)
            ]
        );
        let outcome = fake.run_k8s(&metric("dd", Some("soon"))).await;
        assert!(
            messages(&outcome)[0].starts_with(
                "Metric template dd.test provider datadog error: error parsing metric interval: "
            ),
            "{outcome:?}"
        );
        // Prometheus does not use the interval: a bad one does not matter to the provider.
        assert!(fake.run_k8s(&metric("prom", Some("soon"))).await.passed);
    }

    #[tokio::test]
    async fn the_constructor_refuses_an_unusable_metrics_server() {
        let client = Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap())).unwrap();
        let metrics = OperatorMetrics::register(&mut Default::default());
        let err = Analysis::new(
            client.clone(),
            MeshProvider::Istio,
            "prometheus:9090",
            metrics.clone(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Error building prometheus client: prometheus address \"prometheus:9090\" is not a valid URL: scheme \
             \"prometheus\" is not http or https"
        );
        let analysis = Analysis::new(client, MeshProvider::Istio, SERVER, metrics).unwrap();
        assert_eq!(analysis.metrics_server(), SERVER);
        // Clients are built once per configuration and shared by clones.
        let other = PrometheusConfig::new("http://other:9090");
        analysis.prometheus(&other).unwrap();
        analysis.clone().prometheus(&other).unwrap();
        assert_eq!(analysis.providers.lock().unwrap().len(), 2);
    }
}
