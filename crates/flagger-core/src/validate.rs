//! Semantic validation of Canary, MetricTemplate and AlertProvider objects.
//!
//! Every function returns *all* problems, each naming the field it is about with a path such as
//! `spec.analysis.metrics[1].interval`. The checks cover:
//!
//! - what Flagger's controller rejects before it schedules a canary (`verifyCanary`): cross-namespace
//!   references under `-no-cross-namespace-refs`, the Knative provider and target rules, an autoscaler with a
//!   Knative target, and equal session affinity cookie names;
//! - what the API server rejects through Flagger's CRD schema but the typed API accepts (enums kept as
//!   strings, `required`, `oneOf`, `pattern`);
//! - mistakes Flagger accepts silently and then misbehaves on: unknown providers (which become Istio),
//!   durations that do not parse, weight ladders that never promote, metrics that can never pass,
//!   providers that ignore the configured strategy, webhook URLs that do not parse.

use std::fmt;

use flagger_api::{AlertProvider, Canary, MetricTemplate};

use crate::{
    duration::parse_go_duration,
    provider::{AlertProviderType, CANARY_PROVIDER_VALUES, MeshProvider, MetricProviderType},
};

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `spec.analysis.stepWeights[2]`; `.` for the whole object.
    pub path: String,
    /// What is wrong, for a user.
    pub message: String,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What the validation needs to know about the operator's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationContext {
    /// `-mesh-provider`: the provider of canaries without `spec.provider`.
    pub mesh_provider: MeshProvider,
    /// `-no-cross-namespace-refs`.
    pub no_cross_namespace_refs: bool,
    /// The namespace of objects whose `metadata.namespace` is empty.
    pub default_namespace: String,
}

impl Default for ValidationContext {
    /// Flagger's defaults: Istio, cross-namespace references allowed, namespace `default`.
    fn default() -> Self {
        Self {
            mesh_provider: MeshProvider::Istio,
            no_cross_namespace_refs: false,
            default_namespace: "default".into(),
        }
    }
}

/// The builtin metric names that need neither a query nor a template.
pub const BUILTIN_METRICS: [&str; 2] = ["request-success-rate", "request-duration"];

/// The CRD pattern of `analysis.interval`, `metrics[].interval` and `webhooks[].timeout` (it is anchored
/// only at the start).
const INTERVAL_PATTERN: &str = "^[0-9]+(m|s)";

fn matches_interval_pattern(s: &str) -> bool {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && matches!(s.as_bytes().get(digits), Some(b'm' | b's'))
}

#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(path, message));
    }

    fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() { Ok(()) } else { Err(self.0) }
    }

    /// A Go duration, and optionally the CRD's `^[0-9]+(m|s)` pattern.
    fn duration(&mut self, path: &str, value: Option<&str>, crd_pattern: bool) {
        let Some(value) = value else { return };
        if let Err(e) = parse_go_duration(value) {
            self.push(
                path,
                format!("not a valid duration (such as 30s, 1m or 1m30s): {e}"),
            );
        } else if crd_pattern && !matches_interval_pattern(value) {
            self.push(
                path,
                format!("{value:?} does not match the CRD pattern {INTERVAL_PATTERN} (use seconds or minutes, such as 90s or 2m)"),
            );
        }
    }

    /// An absolute http(s) URL.
    fn url(&mut self, path: &str, value: Option<&str>) {
        let Some(value) = value else { return };
        if !value.contains("://") {
            self.push(
                path,
                format!("{value:?} is not an absolute URL; it needs a scheme, such as http://"),
            );
            return;
        }
        match url::Url::parse(value) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => {}
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                self.push(
                    path,
                    format!("{value:?} must be an http or https URL, not {}", u.scheme()),
                );
            }
            Ok(_) => self.push(path, format!("{value:?} has no host")),
            Err(e) => self.push(path, format!("{value:?} is not a valid URL: {e}")),
        }
    }

    fn required(&mut self, path: &str, value: Option<&str>) {
        if value.is_none_or(str::is_empty) {
            self.push(path, "required");
        }
    }
}

fn non_empty(s: Option<&String>) -> Option<&str> {
    s.map(String::as_str).filter(|s| !s.is_empty())
}

/// Validates a Canary. `ctx` supplies the operator flags that change what is valid.
pub fn validate_canary(canary: &Canary, ctx: &ValidationContext) -> Result<(), Vec<FieldError>> {
    let mut p = Problems::default();
    let spec = &canary.spec;
    let namespace = non_empty(canary.metadata.namespace.as_ref()).unwrap_or(&ctx.default_namespace);

    // Provider.
    let spec_provider = spec.provider.as_deref();
    let mut provider = ctx.mesh_provider.clone();
    if spec_provider == Some("") {
        p.push(
            "spec.provider",
            "must not be empty (the CRD rejects it); remove the field to use the -mesh-provider default",
        );
    } else if let Some(value) = spec_provider {
        match MeshProvider::parse(value) {
            Err(e) => p.push("spec.provider", e.to_string()),
            Ok(_) if !CANARY_PROVIDER_VALUES.contains(&value) => p.push(
                "spec.provider",
                format!(
                    "{value:?} is not allowed by the Canary CRD (only -mesh-provider takes mesh suffixes); expected one of: {}",
                    CANARY_PROVIDER_VALUES.join(", ")
                ),
            ),
            Ok(parsed) => provider = parsed,
        }
    }

    // Target and references.
    let target = &spec.target_ref;
    p.required("spec.targetRef.name", Some(target.name.as_str()));
    p.required("spec.targetRef.apiVersion", Some(target.api_version.as_str()));
    let target_kind = target.kind.as_str();
    if !matches!(target_kind, "Deployment" | "DaemonSet" | "Service") {
        p.push(
            "spec.targetRef.kind",
            format!("{target_kind:?} is not supported; expected Deployment, DaemonSet or Service"),
        );
    }
    let knative_target = target.is_knative_service();
    if knative_target && spec_provider != Some("knative") {
        let shown = spec_provider.map_or_else(
            || format!("{} (from -mesh-provider)", ctx.mesh_provider),
            str::to_owned,
        );
        p.push(
            "spec.provider",
            format!("a Knative Service target needs spec.provider: knative (the -mesh-provider flag is not enough), got {shown}"),
        );
    } else if !knative_target && provider == MeshProvider::Knative {
        p.push(
            "spec.targetRef",
            format!(
                "the knative provider needs a Knative Service target (apiVersion serving.knative.dev/v1, kind Service), got {}/{}",
                target.api_version, target_kind
            ),
        );
    }
    if let Some(autoscaler) = &spec.autoscaler_ref {
        if knative_target {
            p.push(
                "spec.autoscalerRef",
                "cannot be used with a Knative Service target (Knative scales its revisions)",
            );
        }
        let kind = autoscaler.kind.as_str();
        if !matches!(kind, "HorizontalPodAutoscaler" | "ScaledObject") {
            p.push(
                "spec.autoscalerRef.kind",
                format!("{kind:?} is not supported; expected HorizontalPodAutoscaler or ScaledObject"),
            );
        }
        p.required("spec.autoscalerRef.name", Some(autoscaler.name.as_str()));
    }
    if let Some(ingress) = &spec.ingress_ref {
        p.required("spec.ingressRef.name", Some(ingress.name.as_str()));
    }
    if let Some(route) = &spec.route_ref {
        p.required("spec.routeRef.name", Some(route.name.as_str()));
    }
    match provider {
        MeshProvider::Nginx | MeshProvider::Skipper if spec.ingress_ref.is_none() => {
            p.push("spec.ingressRef", format!("required by the {provider} provider"));
        }
        MeshProvider::Apisix if spec.route_ref.is_none() => {
            p.push("spec.routeRef", "required by the apisix provider");
        }
        MeshProvider::GatewayApiV1 | MeshProvider::GatewayApiV1beta1
            if spec.service.gateway_refs.as_ref().is_none_or(Vec::is_empty) =>
        {
            p.push(
                "spec.service.gatewayRefs",
                format!("at least one gateway is required by the {provider} provider"),
            );
        }
        _ => {}
    }
    if let Some(upstream) = &spec.upstream_ref {
        cross_namespace(
            &mut p,
            ctx,
            namespace,
            "spec.upstreamRef.namespace",
            upstream.namespace.as_ref(),
            "Gloo upstream",
            &upstream.name,
        );
    }
    p.url("spec.metricsServer", non_empty(spec.metrics_server.as_ref()));

    // Service.
    let service = &spec.service;
    p.duration("spec.service.timeout", service.timeout.as_deref(), false);
    p.duration(
        "spec.service.backendTimeout",
        service.backend_timeout.as_deref(),
        false,
    );
    if let Some(retries) = &service.retries {
        p.duration(
            "spec.service.retries.perTryTimeout",
            retries.per_try_timeout.as_deref(),
            false,
        );
    }
    if let Some(cors) = &service.cors_policy {
        p.duration("spec.service.corsPolicy.maxAge", cors.max_age.as_deref(), false);
    }

    // Analysis.
    if spec.canary_analysis.is_some() {
        p.push(
            "spec.canaryAnalysis",
            "is not part of the Canary CRD (the API server drops it); rename it to spec.analysis",
        );
    }
    let Some(analysis) = &spec.analysis else {
        p.push("spec.analysis", "required");
        return p.finish();
    };
    validate_analysis(&mut p, analysis, &provider, ctx, namespace);
    p.finish()
}

fn cross_namespace(
    p: &mut Problems,
    ctx: &ValidationContext,
    namespace: &str,
    path: &str,
    referenced: Option<&String>,
    what: &str,
    name: &str,
) {
    if !ctx.no_cross_namespace_refs {
        return;
    }
    if let Some(other) = non_empty(referenced).filter(|other| *other != namespace) {
        p.push(
            path,
            format!("{what} {other}/{name} is in another namespace than the canary ({namespace}); cross-namespace references are blocked by -no-cross-namespace-refs"),
        );
    }
}

fn validate_analysis(
    p: &mut Problems,
    analysis: &flagger_api::CanaryAnalysis,
    provider: &MeshProvider,
    ctx: &ValidationContext,
    namespace: &str,
) {
    // CRD: oneOf [interval, threshold, iterations|stepWeight|stepWeights].
    match analysis.interval.as_deref() {
        None => p.push("spec.analysis.interval", "required"),
        Some(interval) => p.duration("spec.analysis.interval", Some(interval), true),
    }
    if analysis.threshold.is_none() {
        p.push("spec.analysis.threshold", "required");
    }
    let set: Vec<&str> = [
        ("iterations", analysis.iterations.is_some()),
        ("stepWeight", analysis.step_weight.is_some()),
        ("stepWeights", analysis.step_weights.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    match set.as_slice() {
        [] => p.push(
            "spec.analysis",
            "one of iterations (A/B testing, blue/green), stepWeight or stepWeights (canary) is required",
        ),
        [_] => {}
        several => p.push(
            "spec.analysis",
            format!(
                "only one of iterations, stepWeight and stepWeights may be set (the CRD's oneOf), found {}",
                several.join(" and ")
            ),
        ),
    }

    // Weights.
    if let Some(iterations) = analysis.iterations
        && iterations < 1
    {
        p.push(
            "spec.analysis.iterations",
            format!("must be at least 1, got {iterations}"),
        );
    }
    if let Some(step) = analysis.step_weight
        && !(1..=100).contains(&step)
    {
        let why = if step <= 0 {
            "; with a step of 0 the canary never advances"
        } else {
            ""
        };
        p.push(
            "spec.analysis.stepWeight",
            format!("must be between 1 and 100, got {step}{why}"),
        );
    }
    if let Some(steps) = &analysis.step_weights {
        if steps.is_empty() {
            p.push("spec.analysis.stepWeights", "must not be empty");
        }
        let mut previous: Option<i64> = None;
        for (i, &step) in steps.iter().enumerate() {
            let step = i64::from(step);
            let path = format!("spec.analysis.stepWeights[{i}]");
            if !(1..=100).contains(&step) {
                p.push(path, format!("must be between 1 and 100, got {step}"));
            } else if let Some(prev) = previous.filter(|&prev| step <= prev) {
                p.push(
                    path,
                    format!("must be greater than the previous step ({prev}), got {step}"),
                );
            }
            previous = Some(previous.map_or(step, |prev| prev.max(step)));
        }
    }
    if let Some(max) = analysis.max_weight
        && !(1..=100).contains(&max)
    {
        let why = if max > 100 {
            "; the canary weight never exceeds 100, so the analysis would never promote"
        } else {
            ""
        };
        p.push(
            "spec.analysis.maxWeight",
            format!("must be between 1 and 100, got {max}{why}"),
        );
    }
    if let Some(step) = analysis.step_weight_promotion
        && !(0..=100).contains(&step)
    {
        p.push(
            "spec.analysis.stepWeightPromotion",
            format!("must be between 0 and 100, got {step}"),
        );
    }

    // Strategy support by provider.
    let iterations = analysis.iterations.unwrap_or(0);
    let has_match = analysis.match_.as_ref().is_some_and(|m| !m.is_empty());
    if *provider == MeshProvider::Kubernetes {
        if has_match {
            p.push("spec.analysis.match", "A/B testing is not supported by the kubernetes provider (it only switches all traffic at promotion)");
        }
        if analysis.step_weight.is_some() || analysis.step_weights.is_some() {
            p.push(
                "spec.analysis",
                "progressive traffic shifting (stepWeight, stepWeights) is not supported by the kubernetes provider; use iterations (blue/green)",
            );
        }
    } else if has_match && iterations > 0 && !supports_ab(provider) {
        p.push(
            "spec.analysis.match",
            format!("the {provider} provider cannot route by request match; during the A/B iterations it would send all traffic to the canary"),
        );
    }
    if analysis.mirror == Some(true) {
        match provider {
            MeshProvider::Istio => {}
            MeshProvider::GatewayApiV1 | MeshProvider::GatewayApiV1beta1 if iterations > 0 => {}
            MeshProvider::GatewayApiV1 | MeshProvider::GatewayApiV1beta1 => p.push(
                "spec.analysis.mirror",
                format!("the {provider} provider mirrors traffic only in blue/green (iterations), not while shifting weights"),
            ),
            _ => p.push(
                "spec.analysis.mirror",
                format!("traffic mirroring is not supported by the {provider} provider (only by istio, and by gatewayapi in blue/green)"),
            ),
        }
    }

    // Session affinity.
    if let Some(affinity) = &analysis.session_affinity {
        let cookie = affinity.cookie_name.as_str();
        let primary = affinity.primary_cookie_name.as_deref().unwrap_or_default();
        if cookie.is_empty() {
            p.push("spec.analysis.sessionAffinity.cookieName", "required");
        } else if cookie == primary {
            p.push(
                "spec.analysis.sessionAffinity.primaryCookieName",
                format!("must differ from cookieName (both are {cookie:?})"),
            );
        }
        if !matches!(provider, MeshProvider::Istio) && !provider.is_gateway_api() {
            p.push(
                "spec.analysis.sessionAffinity",
                format!(
                    "session affinity is supported only by the istio and gatewayapi providers, not {provider}"
                ),
            );
        }
        if let Some(max_age) = affinity.max_age
            && max_age < 0
        {
            p.push(
                "spec.analysis.sessionAffinity.maxAge",
                format!("must not be negative, got {max_age}"),
            );
        }
    }

    // Metrics.
    for (i, metric) in analysis.metrics.iter().flatten().enumerate() {
        let base = format!("spec.analysis.metrics[{i}]");
        p.required(&format!("{base}.name"), Some(metric.name.as_str()));
        p.duration(&format!("{base}.interval"), metric.interval.as_deref(), true);
        let has_query = metric.query.as_deref().is_some_and(|q| !q.trim().is_empty());
        if metric.template_ref.is_none() && !has_query && !BUILTIN_METRICS.contains(&metric.name.as_str()) {
            p.push(
                base.clone(),
                format!(
                    "{:?} is not a builtin metric ({}) and has neither templateRef nor query, so every check fails",
                    metric.name,
                    BUILTIN_METRICS.join(", ")
                ),
            );
        }
        if let Some(range) = &metric.threshold_range
            && let (Some(min), Some(max)) = (range.min, range.max)
            && min > max
        {
            p.push(
                format!("{base}.thresholdRange"),
                format!("min ({min}) is greater than max ({max}), so no value can pass"),
            );
        }
        if let Some(template) = &metric.template_ref {
            p.required(&format!("{base}.templateRef.name"), Some(template.name.as_str()));
            cross_namespace(
                p,
                ctx,
                namespace,
                &format!("{base}.templateRef.namespace"),
                template.namespace.as_ref(),
                "metric template",
                &template.name,
            );
        }
    }

    // Webhooks.
    for (i, hook) in analysis.webhooks.iter().flatten().enumerate() {
        let base = format!("spec.analysis.webhooks[{i}]");
        p.required(&format!("{base}.name"), Some(hook.name.as_str()));
        if hook.url.is_empty() {
            p.push(format!("{base}.url"), "required");
        } else {
            p.url(&format!("{base}.url"), Some(hook.url.as_str()));
        }
        p.duration(&format!("{base}.timeout"), hook.timeout.as_deref(), true);
        if let Some(retries) = hook.retries
            && retries < 0
        {
            p.push(
                format!("{base}.retries"),
                format!("must not be negative, got {retries}"),
            );
        }
    }

    // Alerts.
    for (i, alert) in analysis.alerts.iter().flatten().enumerate() {
        let base = format!("spec.analysis.alerts[{i}]");
        p.required(&format!("{base}.name"), Some(alert.name.as_str()));
        p.required(
            &format!("{base}.providerRef.name"),
            Some(alert.provider_ref.name.as_str()),
        );
        cross_namespace(
            p,
            ctx,
            namespace,
            &format!("{base}.providerRef.namespace"),
            alert.provider_ref.namespace.as_ref(),
            "alert provider",
            &alert.provider_ref.name,
        );
    }
}

/// Whether the provider routes A/B traffic by `analysis.match` (headers, cookies, query parameters).
fn supports_ab(provider: &MeshProvider) -> bool {
    matches!(
        provider,
        MeshProvider::Istio
            | MeshProvider::GatewayApiV1
            | MeshProvider::GatewayApiV1beta1
            | MeshProvider::AppMesh
            | MeshProvider::AppMeshV1beta2
            | MeshProvider::Contour
            | MeshProvider::Gloo
            | MeshProvider::Nginx
    )
}

/// Validates a MetricTemplate.
pub fn validate_metric_template(template: &MetricTemplate) -> Result<(), Vec<FieldError>> {
    let mut p = Problems::default();
    let provider = &template.spec.provider;
    let kind = match MetricProviderType::parse(&provider.type_) {
        Ok(kind) => Some(kind),
        Err(e) => {
            p.push("spec.provider.type", e.to_string());
            None
        }
    };
    let address = non_empty(provider.address.as_ref());
    p.url("spec.provider.address", address);
    if template.spec.query.trim().is_empty() {
        p.push("spec.query", "required");
    }
    match kind {
        Some(MetricProviderType::Cloudwatch) if non_empty(provider.region.as_ref()).is_none() => {
            p.push("spec.provider.region", "required by the cloudwatch provider");
        }
        Some(kind @ (MetricProviderType::Dynatrace | MetricProviderType::Splunk)) if address.is_none() => {
            p.push(
                "spec.provider.address",
                format!("required by the {kind} provider"),
            );
        }
        _ => {}
    }
    if let Some(
        kind @ (MetricProviderType::Datadog
        | MetricProviderType::Newrelic
        | MetricProviderType::Dynatrace
        | MetricProviderType::Splunk),
    ) = kind
        && provider.secret_ref.is_none()
    {
        p.push(
            "spec.provider.secretRef",
            format!("required by the {kind} provider (it holds the API credentials)"),
        );
    }
    p.finish()
}

/// Validates an AlertProvider.
pub fn validate_alert_provider(provider: &AlertProvider) -> Result<(), Vec<FieldError>> {
    let mut p = Problems::default();
    let spec = &provider.spec;
    if let Err(e) = AlertProviderType::parse(&spec.type_) {
        p.push("spec.type", e.to_string());
    }
    let address = non_empty(spec.address.as_ref());
    match (address, &spec.secret_ref) {
        (None, None) => p.push(
            "spec",
            "one of address or secretRef (a Secret with an address key) is required",
        ),
        (Some(_), Some(_)) => p.push(
            "spec",
            "only one of address and secretRef may be set (the CRD's oneOf)",
        ),
        _ => {}
    }
    p.url("spec.address", address);
    p.url("spec.proxy", non_empty(spec.proxy.as_ref()));
    p.finish()
}

#[cfg(test)]
mod tests;
