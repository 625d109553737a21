//! One reconcile of one Canary: observe → decide → act.

use std::sync::Arc;
use std::time::Duration;

use flagger_api::{Canary, CanaryCondition, ConditionStatus};
use flagger_core::machine::{self, Answer, Answers, DecideError, Event, Request, Step};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use tracing::Instrument;

use crate::act::{self, ApplyError};
use crate::context::Context;
use crate::finalizer::{self, Finalizing};
use crate::hooks;
use crate::observe::{self, ObserveError};

/// How long a reconcile waits for the Deployment cache's first list after a start.
const CACHE_SYNC_WAIT: Duration = Duration::from_secs(30);

/// How soon a reconcile that failed on a write is retried.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// A reconcile failed; it is retried (see [`error_policy`]).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// decide was answered out of order (a bug).
    #[error(transparent)]
    Decide(#[from] DecideError),
    /// Applying the plan failed part way.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl ReconcileError {
    /// A stable, low-cardinality name for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Decide(_) => "decide",
            Self::Apply(e) => e.category(),
        }
    }
}

/// Reconciles one Canary.
pub async fn reconcile(canary: Arc<Canary>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let canary = ctx.freshest(canary);
    let span =
        flagger_telemetry::logging::canary_span(&canary.name_any(), &canary.namespace().unwrap_or_default());
    reconcile_canary(canary, &ctx).instrument(span).await
}

async fn reconcile_canary(canary: Arc<Canary>, ctx: &Context) -> Result<Action, ReconcileError> {
    if canary.metadata.deletion_timestamp.is_some() && !finalizer::has_finalizer(&canary) {
        return Ok(Action::await_change());
    }
    // The Deployment cache fills as the controller consumes its watch: right after a start, a target that
    // exists may not be in it yet. Decide nothing before its first list is complete.
    if tokio::time::timeout(CACHE_SYNC_WAIT, ctx.caches.wait_for_triggering_caches())
        .await
        .is_err()
    {
        return Ok(Action::requeue(RETRY_AFTER));
    }
    // revertOnDeletion: the finalizer is added, removed or acted on before anything else (an invalid
    // Canary can still be deleted).
    match finalizer::step(ctx, &canary).await? {
        Finalizing::No => {}
        // The write of the finalizer triggers the next reconcile.
        Finalizing::Done => return Ok(Action::await_change()),
        Finalizing::WaitFor(wait) => return Ok(Action::requeue(wait)),
    }
    let interval = canary.analysis_interval();
    let now = Timestamp::now();
    let obs = match observe::validate(ctx, &canary) {
        Ok(()) => observe::observe(ctx, canary.clone(), now).await,
        Err(e) => Err(e),
    };
    let obs = match obs {
        Ok(obs) => obs,
        Err(e) => {
            report(ctx, &canary, &e).await;
            return Ok(if e.is_transient() {
                Action::requeue(interval)
            } else {
                Action::await_change()
            });
        }
    };
    ctx.should_report(&ObjectRef::from_obj(canary.as_ref()), None);
    let canary = clear_valid_condition(ctx, canary).await?;
    let obs = observe::Observation {
        canary: canary.clone(),
        ..obs
    };

    let observed = obs.observed();
    let mut answers = Answers::default();
    let mut timer = None;
    let plan = loop {
        match machine::decide(&observed, &answers, now)? {
            Step::Done(plan) => break plan,
            Step::Need(request) => {
                timer.get_or_insert_with(|| {
                    ctx.metrics.start_timer(
                        &canary.spec.target_ref.name,
                        &canary.namespace().unwrap_or_default(),
                    )
                });
                let answer = match request {
                    Request::Webhook { index, phase, .. } => {
                        Answer::Webhook(hooks::call(ctx, &canary, index, phase).await)
                    }
                    Request::Metrics => Answer::Metrics(ctx.analysis.run(&canary, &ctx.caches).await),
                };
                answers.push(answer);
            }
        }
    };
    drop(timer);

    act::apply(ctx, &obs, &plan).await?;

    let ns = obs.namespace();
    let status = plan.status.as_ref().or(canary.status.as_ref());
    if let Some(status) = status {
        // Flagger labels its canary series with the target's name.
        ctx.metrics
            .set_status(&canary.spec.target_ref.name, &ns, status.phase());
        let weight = i64::from(status.canary_weight());
        ctx.metrics
            .set_weight(&canary.spec.target_ref.name, &ns, 100 - weight, weight);
    }
    tracing::debug!(
        actions = plan.actions.len(),
        requeue_after = ?plan.requeue_after,
        "reconciled"
    );
    // Knative Services are not watched for changes (their CRD may be missing): look every interval, as
    // Flagger does.
    let requeue = plan
        .requeue_after
        .or_else(|| crate::knative::targets_knative(&canary).then_some(interval));
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// The condition flagger-rs adds to a Canary it cannot reconcile: `Valid=False` with the reason and the
/// problem. The state machine's `Promoted` condition is kept next to it.
pub const VALID_CONDITION: &str = "Valid";

/// Reports a canary that cannot be reconciled: a log line always; a Warning event and the `Valid=False`
/// condition when the problem is new.
async fn report(ctx: &Context, canary: &Canary, error: &ObserveError) {
    let message = error.to_string();
    tracing::error!(reason = error.category(), "{message}");
    ctx.metrics.inc_reconcile_error(error.category());
    if !ctx.should_report(&ObjectRef::from_obj(canary), Some(&message)) {
        return;
    }
    ctx.recorder
        .record(canary, &Event::warning(message.clone()), &ctx.gate)
        .await;
    let current = canary.status.as_ref().and_then(|s| s.condition(VALID_CONDITION));
    if current.is_some_and(|c| c.reason == error.reason() && c.message.as_deref() == Some(message.as_str())) {
        return;
    }
    let now = Time(Timestamp::now());
    let mut conditions: Vec<CanaryCondition> = canary
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != VALID_CONDITION)
        .collect();
    conditions.push(CanaryCondition {
        type_: VALID_CONDITION.to_string(),
        status: ConditionStatus::False,
        last_update_time: Some(now.clone()),
        last_transition_time: Some(
            current
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or(now),
        ),
        reason: error.reason().to_string(),
        message: Some(message),
    });
    if ctx.gate.check().is_err() {
        return;
    }
    match flagger_k8s::patch_canary_conditions(&ctx.client, canary, Some(&conditions)).await {
        Ok(updated) => ctx.remember_write(canary.resource_version(), updated),
        Err(e) => tracing::warn!(error = %e, "writing the Valid condition"),
    }
}

/// Removes a `Valid=False` condition left from an earlier problem; returns the Canary as it now is.
async fn clear_valid_condition(ctx: &Context, canary: Arc<Canary>) -> Result<Arc<Canary>, ApplyError> {
    let Some(conditions) = canary.status.as_ref().and_then(|s| s.conditions.as_ref()) else {
        return Ok(canary);
    };
    if !conditions.iter().any(|c| c.type_ == VALID_CONDITION) {
        return Ok(canary);
    }
    let rest: Vec<CanaryCondition> = conditions
        .iter()
        .filter(|c| c.type_ != VALID_CONDITION)
        .cloned()
        .collect();
    ctx.gate.check()?;
    let rest = (!rest.is_empty()).then_some(rest);
    let updated = flagger_k8s::patch_canary_conditions(&ctx.client, &canary, rest.as_deref()).await?;
    ctx.remember_write(canary.resource_version(), updated.clone());
    Ok(Arc::new(updated))
}

/// What to do after a failed reconcile: count it, log it and retry soon (a lost leadership is not
/// retried: the process is stopping).
pub fn error_policy(canary: Arc<Canary>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    ctx.metrics.inc_reconcile_error(error.category());
    tracing::warn!(
        canary = %format!("{}.{}", canary.name_any(), canary.namespace().unwrap_or_default()),
        error = %error,
        "reconcile failed"
    );
    match error {
        ReconcileError::Apply(ApplyError::NotLeader(_)) => Action::await_change(),
        _ => Action::requeue(RETRY_AFTER.min(canary.analysis_interval())),
    }
}
