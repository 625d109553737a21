//! **observe**: everything decide needs about one Canary, read from the watch caches.

use std::sync::Arc;

use flagger_api::{Canary, CanaryPhase};
use flagger_core::hash::HashError;
use flagger_core::machine::{self, Observed, Readiness, Routes, TargetRevision};
use flagger_core::primary::{self, PrimaryError};
use flagger_core::provider::{MeshProvider, UnknownProvider};
use flagger_core::validate::{ValidationContext, validate_canary};
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::configs::{self, MissingConfig, TrackedConfigs};
use crate::context::Context;
use crate::knative;
use crate::router::{AnyRouter, RouteCx, RouterError, RouterOptions};
use crate::scaler::{self, Scaler, ScalerError};
use crate::workload::{self, Workload};

/// What observe found about one canary.
pub struct Observation {
    /// The Canary (the freshest known version).
    pub canary: Arc<Canary>,
    /// The target workload.
    pub target: Workload,
    /// The primary workload, if it exists.
    pub primary: Option<Workload>,
    /// The selector label key and the target's value for it (`None` for a Service target).
    pub selector: Option<(String, String)>,
    /// The provider in effect.
    pub provider: MeshProvider,
    /// Its router.
    pub router: AnyRouter,
    /// The target revision.
    pub revision: TargetRevision,
    /// Readiness of the primary.
    pub primary_ready: Readiness,
    /// Readiness of the target.
    pub canary_ready: Readiness,
    /// Current routes.
    pub routes: Routes,
    /// Whether the primary runs the target's template.
    pub primary_runs_target: bool,
    /// The target's tracked ConfigMaps and Secrets (none without config tracking).
    pub configs: TrackedConfigs,
    /// The target's autoscaler (`autoscalerRef`).
    pub scaler: Option<Scaler>,
}

impl Observation {
    /// The view decide takes.
    pub fn observed(&self) -> Observed<'_> {
        Observed {
            canary: &self.canary,
            target: self.revision.clone(),
            primary: self.primary_ready.clone(),
            canary_workload: self.canary_ready.clone(),
            target_scaled_to_zero: self.target.scaled_to_zero(),
            routes: self.routes,
            provider: self.provider.clone(),
            primary_runs_target: self.primary_runs_target,
            last_tick: machine::last_tick(self.canary.status.as_ref()),
        }
    }

    /// `<namespace>`.
    pub fn namespace(&self) -> String {
        self.canary.namespace().unwrap_or_default()
    }
}

/// Why a canary cannot be looked at now. Each is reported as a Warning event and a log line.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// The spec is invalid.
    #[error("invalid canary spec: {0}")]
    Invalid(String),
    /// The target kind is not supported by this build.
    #[error("{0}")]
    Unsupported(String),
    /// The target does not exist.
    #[error("{kind} {name}.{namespace} not found")]
    TargetNotFound {
        /// `Deployment` or `DaemonSet`.
        kind: String,
        /// Its name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// The target has no usable selector label.
    #[error(transparent)]
    Selector(#[from] PrimaryError),
    /// The autoscaler cannot be read.
    #[error(transparent)]
    Scaler(Box<ScalerError>),
    /// A ConfigMap or Secret the target requires is missing.
    #[error(transparent)]
    Config(#[from] MissingConfig),
    /// The target's template cannot be hashed.
    #[error("hashing the target's pod template: {0}")]
    Hash(#[from] HashError),
    /// The provider is unknown.
    #[error(transparent)]
    Provider(#[from] UnknownProvider),
    /// The router cannot report the weights.
    #[error(transparent)]
    Router(Box<RouterError>),
}

impl ObserveError {
    /// Whether looking again later may help without a change of the Canary (a missing target may be
    /// created; a router object may become readable).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::TargetNotFound { .. } | Self::Selector(_) | Self::Config(_) => true,
            Self::Scaler(e) => e.is_transient(),
            Self::Router(e) => e.is_transient(),
            Self::Invalid(_) | Self::Unsupported(_) | Self::Hash(_) | Self::Provider(_) => false,
        }
    }

    /// The reason of the `Valid=False` condition.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "InvalidSpec",
            Self::Unsupported(_) => "Unsupported",
            Self::TargetNotFound { .. } => "TargetNotFound",
            Self::Selector(_) => "NoSelectorLabel",
            Self::Config(_) => "ConfigNotFound",
            Self::Scaler(_) => "AutoscalerError",
            Self::Hash(_) => "HashError",
            Self::Provider(_) => "UnknownProvider",
            Self::Router(_) => "RouterError",
        }
    }

    /// A stable, low-cardinality name for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_spec",
            Self::Unsupported(_) => "unsupported",
            Self::TargetNotFound { .. } => "target_not_found",
            Self::Selector(_) => "selector",
            Self::Config(_) => "config_not_found",
            Self::Scaler(_) => "autoscaler",
            Self::Hash(_) => "hash",
            Self::Provider(_) => "provider",
            Self::Router(_) => "router",
        }
    }
}

/// The provider of a canary: `spec.provider`, else `-mesh-provider`.
pub fn provider(canary: &Canary, default: &MeshProvider) -> Result<MeshProvider, UnknownProvider> {
    match canary.spec.provider.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => MeshProvider::parse(p),
        None => Ok(default.clone()),
    }
}

/// Checks the spec as Flagger's `verifyCanary` does (and more): every problem, joined.
pub fn validate(ctx: &Context, canary: &Canary) -> Result<(), ObserveError> {
    let vctx = ValidationContext {
        mesh_provider: ctx.config.mesh_provider.clone(),
        no_cross_namespace_refs: ctx.config.no_cross_namespace_refs,
        default_namespace: canary.namespace().unwrap_or_default(),
    };
    validate_canary(canary, &vctx).map_err(|errors| {
        ObserveError::Invalid(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let target_ref = &canary.spec.target_ref;
    if !workload::is_target_kind(&target_ref.api_version, &target_ref.kind) {
        return Err(ObserveError::Unsupported(format!(
            "targetRef {}/{} is not supported by this build of flagger-rs yet (Deployment, DaemonSet and Service are)",
            target_ref.api_version, target_ref.kind
        )));
    }
    Ok(())
}

/// Reads everything about `canary` from the caches.
pub async fn observe(
    ctx: &Context,
    canary: Arc<Canary>,
    now: Timestamp,
) -> Result<Observation, ObserveError> {
    let ns = canary.namespace().unwrap_or_default();
    let target_name = canary.spec.target_ref.name.clone();
    let kind = canary.spec.target_ref.kind.as_str();
    let not_found = || ObserveError::TargetNotFound {
        kind: kind.to_owned(),
        name: target_name.clone(),
        namespace: ns.clone(),
    };
    let knative_target = if knative::targets_knative(&canary) {
        let (target, primary) = knative::observe(&ctx.caches, &ns, &target_name)
            .await
            .map_err(|e| ObserveError::Router(Box::new(e.into())))?
            .ok_or_else(not_found)?;
        Some((
            Workload::Knative(Arc::new(target)),
            primary.map(|p| Workload::Knative(Arc::new(p))),
        ))
    } else {
        None
    };
    let target = match &knative_target {
        Some((target, _)) => target.clone(),
        None => workload::lookup(&ctx.caches, kind, &ns, &target_name).ok_or_else(not_found)?,
    };
    let selector = target.selector_label(&ctx.config.workload)?;
    if let Workload::DaemonSet(ds) = &target {
        primary::check_rolling_update(ds)?;
    }
    let provider = provider(&canary, &ctx.config.mesh_provider)?;
    let router = AnyRouter::with_options(&provider, &RouterOptions::from_config(&ctx.config));

    let primary_name = format!("{target_name}{}", primary::PRIMARY_SUFFIX);
    let primary = match knative_target {
        Some((_, primary)) => primary,
        None => workload::lookup(&ctx.caches, kind, &ns, &primary_name),
    };
    let created_key = format!("{kind}/{ns}/{primary_name}");
    if primary.is_some() {
        ctx.cache_caught_up(&created_key);
    }
    let analysis = canary.analysis().cloned().unwrap_or_default();
    let primary_ready = match &primary {
        Some(p) => p.readiness(&canary, analysis.primary_ready_threshold(), now),
        None => Readiness::NotReady {
            message: format!(
                "{} {primary_name}.{ns} get query error: {}.apps \"{primary_name}\" not found",
                kind.to_lowercase(),
                kind.to_lowercase() + "s",
            ),
            retriable: true,
        },
    };
    let canary_ready = target.readiness(&canary, analysis.canary_ready_threshold(), now);
    let (configs, checksums) =
        if let (true, Some(template)) = (ctx.config.enable_config_tracking, target.template()) {
            let no_spec = PodSpec::default();
            let configs = configs::observe(&ctx.caches, &ns, template.spec.as_ref().unwrap_or(&no_spec))?;
            let checksums = configs.checksums()?;
            (configs, Some(checksums))
        } else {
            (TrackedConfigs::default(), None)
        };
    let revision = TargetRevision {
        spec_hash: target.revision()?,
        configs: checksums,
    };
    let scaler = scaler::observe(&ctx.caches, &canary).await?;
    let primary_runs_target = match &primary {
        Some(p) => p.runs(&target, &ctx.config.workload, &configs.refs())?,
        None => false,
    };

    let phase = canary.status.as_ref().map(|s| s.phase()).unwrap_or_default();
    let routes = if provider == MeshProvider::Kubernetes {
        Routes::PRIMARY
    } else {
        let cx = RouteCx {
            client: &ctx.client,
            caches: &ctx.caches,
            canary: &canary,
            gate: &ctx.gate,
        };
        match router.get_routes(&cx).await {
            Ok(routes) => routes,
            // Before the analysis the weights are not read; the routing object is created by this tick.
            Err(_) if !uses_routes(phase) => Routes::PRIMARY,
            Err(e) => return Err(e.into()),
        }
    };

    Ok(Observation {
        canary,
        target,
        primary,
        selector,
        provider,
        router,
        revision,
        primary_ready,
        canary_ready,
        routes,
        primary_runs_target,
        configs,
        scaler,
    })
}

/// Phases in which decide reads the router's weights.
fn uses_routes(phase: CanaryPhase) -> bool {
    matches!(
        phase,
        CanaryPhase::Progressing
            | CanaryPhase::WaitingPromotion
            | CanaryPhase::Promoting
            | CanaryPhase::Finalising
    )
}

impl From<RouterError> for ObserveError {
    fn from(e: RouterError) -> Self {
        Self::Router(Box::new(e))
    }
}

impl From<ScalerError> for ObserveError {
    fn from(e: ScalerError) -> Self {
        Self::Scaler(Box::new(e))
    }
}
