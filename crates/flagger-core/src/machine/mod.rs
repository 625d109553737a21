//! The canary state machine: what Flagger 1.44's `advanceCanary` does on one tick, as a pure function.
//!
//! A reconcile is observe → decide → act. This module is **decide**. It performs no I/O, reads no clock
//! and holds no client: it gets what the I/O layer observed about one Canary ([`Observed`]), the answers
//! of the checks run so far on this tick ([`Answers`]) and the current time, and says what to do.
//!
//! # The step protocol
//!
//! Which webhooks and metric checks run depends on the phase and on the results of the checks before
//! them (the first failing check stops the rest). So [`decide`] is a step function:
//!
//! ```text
//! let mut answers = Answers::default();
//! loop {
//!     match decide(&observed, &answers, now)? {
//!         Step::Need(request) => answers.push(run(request)),   // call one webhook, or run the metrics
//!         Step::Done(plan) => break act(plan),
//!     }
//! }
//! ```
//!
//! Every call replays the tick from the start, consuming the answers in order, and stops at the first
//! check it has no answer for. Each call is pure and deterministic: the same inputs give the same step.
//! A [`Request::Webhook`] names exactly one webhook (its index in `analysis.webhooks`), so the
//! short-circuit rules are decided here, not in the driver: the first failing pre-rollout/rollout hook
//! stops the tick, the first closed confirm-* gate stops the tick, the first rollback hook that answers
//! ≤ 202 rolls back. [`Request::Metrics`] runs the builtin metrics then the template metrics (the
//! metrics layer stops at the first failure and returns the events it recorded).
//!
//! # The plan
//!
//! A [`Plan`] lists the [`Action`]s in Flagger's order: routing, scaling, promotion, events, alerts,
//! post-rollout hooks, metric counters. [`Action::WriteStatus`] marks where the new status (in
//! [`Plan::status`]) is written; it appears at most once, at the position of the last status write
//! Flagger would have made. `status` is `None` when nothing changed. Status writes follow Flagger's
//! `SyncStatus` and `setStatusPhase` field rules exactly, with one deliberate fix: `lastTransitionTime`
//! is set to `now` only when some other field of the status changed (Flagger bumps it on every write).
//!
//! # Tick timing
//!
//! Flagger runs `advanceCanary` on a timer per canary, every analysis interval. flagger-rs derives the
//! ticks from state instead, so a reconcile can be triggered by any watch event:
//!
//! - The time of the last analysis tick is persisted by the act layer in the Canary status field
//!   **`status.lastTickTime`** ([`CanaryStatus::last_tick_time`], RFC 3339, written together with the
//!   status; Go Flagger ignores it). [`Observed::last_tick`] is read from it (see [`last_tick`]), and
//!   [`Plan::tick`] is `Some(now)` when this call was a tick, to be stored there.
//! - Phases that advance on a timer (`""`, Initializing, Waiting, Progressing, WaitingPromotion,
//!   Promoting, Finalising, and any suspended canary) tick when `now ≥ last_tick + interval` (or when
//!   no tick was recorded). A call before that does nothing but return
//!   [`Plan::requeue_after`] = the time left.
//! - A change of the target revision is picked up at any time: in Initialized, Succeeded and Failed the
//!   machine runs on every call (those phases only react to a change and have no timer, so an idle canary
//!   is never requeued), and in Progressing/WaitingPromotion a new revision restarts the analysis at once.
//! - After a tick that leaves the canary in a timed phase, `requeue_after` is the interval; after one that
//!   leaves it idle, `None` (wait for a watch event).
//!
//! The first tick of a canary (no recorded tick) runs immediately, as Flagger's job does on start.
//! A change in an idle phase that cannot start yet (the primary is not ready) is looked at again after
//! one interval.
//!
//! # What the act layer must do
//!
//! - Apply the actions in order, and write [`Plan::status`] (with [`Plan::tick`]) at
//!   [`Action::WriteStatus`]; when the status is unchanged but `tick` is set, write only the tick.
//! - The infrastructure actions ([`Action::InitializeServices`], [`Action::EnsurePrimary`],
//!   [`Action::ReconcileApexService`], [`Action::ReconcileMeshRouter`],
//!   `ReconcilePrimaryScaler { init: true }`) are in every plan that gets past the timing check, as Flagger
//!   runs them every tick; they must be no-ops against the watch caches when nothing differs, so an idle
//!   canary costs no API request.
//! - Send every [`Action::Event`] to the event webhooks, and run the post-rollout hooks of
//!   [`Action::RunPostRolloutHooks`] with their `Post-rollout check ... passed` / `Post-rollout hook ...
//!   failed ...` events.
//! - Gauges (status, weights, analysis duration) follow from the status and the applied routes.
//!
//! # Deliberate differences from Flagger
//!
//! - `lastTransitionTime` only moves when the status changed (see above).
//! - Crash safety: the operator may be killed between any two actions. Decide notices the states a lost
//!   status write leaves behind and finishes the work instead of repeating it:
//!   a canary step applied to the router but not to the status is recorded, not taken again (Progressing,
//!   canary strategy: router weight above the status weight); a promotion shift likewise (Promoting:
//!   router canary weight below the status weight), and all traffic already on the primary finalises
//!   (Flagger would stay in Promoting); a release under analysis whose target is already scaled to zero
//!   (an interrupted rollback) is rolled back; Finalising does not wait for the canary's readiness (a
//!   Deployment at zero replicas is not ready in flagger-rs).
//! - Migration: a `lastAppliedSpec` written by Go Flagger (no `frs1-` prefix) is translated on first sight.
//!   An Initialized or Succeeded canary whose primary runs the current target
//!   ([`Observed::primary_runs_target`]) is re-baselined silently, with an `Adopted ... from Flagger` event;
//!   one whose target changed while no operator ran keeps the foreign hashes, so the change is analysed.
//!   A release under way, waiting or failed is re-baselined to the current target and continues, so taking
//!   over from Flagger re-runs no analysis.
//! - Known gap: the first promotion shift of a blue/green or A/B release with `stepWeightPromotion` can
//!   be taken twice after a crash (their status weight is 0 when Promoting starts, so a lost write cannot
//!   be told apart).

mod engine;
mod status;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod scenario_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use flagger_api::{AlertSeverity, Canary, CanaryPhase, CanaryStatus, HookType};
use k8s_openapi::jiff::Timestamp;

use crate::provider::MeshProvider;
pub use crate::readiness::Readiness;

/// Flagger's event reason: every event it records uses it.
pub const EVENT_REASON: &str = "Synced";

/// What the I/O layer observed about one Canary, its workloads and its router.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The Canary, spec and status, as read now.
    pub canary: &'a Canary,
    /// The current revision of the target.
    pub target: TargetRevision,
    /// Readiness of the primary workload (primaryReadyThreshold, progress deadline), without Flagger's
    /// `<name>-primary.<ns> not ready:` prefix, which decide adds.
    pub primary: Readiness,
    /// Readiness of the target (canary) workload (canaryReadyThreshold), without the prefix.
    pub canary_workload: Readiness,
    /// Whether the target is scaled to zero (a Deployment's `spec.replicas` is 0, a DaemonSet carries the
    /// scale-to-zero nodeSelector).
    pub target_scaled_to_zero: bool,
    /// The router's current weights (`GetRoutes`). Ignored for the `kubernetes` provider, whose
    /// weights are derived from the status as Flagger's no-op router does.
    pub routes: Routes,
    /// The provider in effect: `spec.provider`, else `-mesh-provider`.
    pub provider: MeshProvider,
    /// Whether the primary runs the target's current pod template (as the primary would get it, ignoring
    /// `flagger-id`; see `crate::primary::runs_target`). Read only when the status holds revision hashes
    /// written by Go Flagger, to decide whether flagger-rs can adopt the current target without an analysis.
    pub primary_runs_target: bool,
    /// When the last analysis tick ran (`status.lastTickTime`, read with [`last_tick`]), if ever.
    pub last_tick: Option<Timestamp>,
}

/// The revision of the target as computed by the I/O layer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetRevision {
    /// The spec hash of the target (`crate::hash::spec_hash` of its pod template).
    pub spec_hash: String,
    /// Checksums of the tracked ConfigMaps and Secrets (`configmap/<name>` → checksum); `None` when
    /// config tracking is disabled.
    pub configs: Option<BTreeMap<String, String>>,
}

/// Traffic weights as the router reports or should apply them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Routes {
    /// Weight of the primary (percent).
    pub primary: i32,
    /// Weight of the canary (percent).
    pub canary: i32,
    /// Whether traffic is mirrored to the canary.
    pub mirrored: bool,
}

impl Routes {
    /// All traffic to the primary, not mirrored.
    pub const PRIMARY: Self = Self {
        primary: 100,
        canary: 0,
        mirrored: false,
    };
}

/// A check decide needs the result of before it can go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Call one webhook and report whether it succeeded (status ≤ 202).
    Webhook {
        /// Index of the webhook in `analysis.webhooks`.
        index: usize,
        /// Name of the webhook (for logs).
        name: String,
        /// Its type.
        hook_type: HookType,
        /// The phase to send in the payload.
        phase: CanaryPhase,
    },
    /// Run the builtin metric checks, then the MetricTemplate checks, stopping at the first failure.
    Metrics,
}

/// The result of one [`Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The webhook succeeded (`Ok`) or failed with this error text.
    Webhook(Result<(), String>),
    /// The metric checks passed or not, and the events they recorded (e.g. `Halt ... success rate ...`).
    Metrics(MetricsOutcome),
}

/// The outcome of the metric checks of one tick.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsOutcome {
    /// All checks passed.
    pub passed: bool,
    /// Events the checks recorded, in order.
    pub events: Vec<Event>,
}

/// The answers gathered so far on this tick, in the order they were requested.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answers(Vec<Answer>);

impl Answers {
    /// Records the answer to the last request.
    pub fn push(&mut self, answer: Answer) {
        self.0.push(answer);
    }

    /// The answers, in order.
    pub fn as_slice(&self) -> &[Answer] {
        &self.0
    }
}

impl From<Vec<Answer>> for Answers {
    fn from(v: Vec<Answer>) -> Self {
        Self(v)
    }
}

/// What decide says for now.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Run this check, add its answer and call decide again.
    Need(Request),
    /// The tick is decided.
    Done(Box<Plan>),
}

/// What to do on this tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The actions, in order.
    pub actions: Vec<Action>,
    /// The new status to write at [`Action::WriteStatus`]; `None` when nothing changed.
    pub status: Option<CanaryStatus>,
    /// `Some(now)` when this call was an analysis tick: store it as the last tick time.
    pub tick: Option<Timestamp>,
    /// When to call decide again without a watch event; `None`: only on a watch event.
    pub requeue_after: Option<Duration>,
}

impl Plan {
    /// The events of the plan, in order.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.actions.iter().filter_map(|a| match a {
            Action::Event(e) => Some(e),
            _ => None,
        })
    }

    /// The `SetRoutes` of the plan, in order.
    pub fn routes(&self) -> impl Iterator<Item = Routes> + '_ {
        self.actions.iter().filter_map(|a| match a {
            Action::SetRoutes(r) => Some(*r),
            _ => None,
        })
    }
}

/// One thing for the act layer to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create or update the `<svc>-canary` and `<svc>-primary` Services (`KubernetesRouter.Initialize`).
    InitializeServices,
    /// Check that the metric providers are online; emit `all the metrics providers are available!` or
    /// the error event `Error checking metric providers: ...` (never blocking).
    CheckMetricProviders,
    /// Create the `<target>-primary` workload (and primary ConfigMaps/Secrets) if absent.
    EnsurePrimary,
    /// Reconcile the primary autoscaler; `init: true` only creates it, `false` also updates it.
    ReconcilePrimaryScaler {
        /// Create only.
        init: bool,
    },
    /// Pause the target's autoscaler.
    PauseTargetScaler,
    /// Resume the target's autoscaler.
    ResumeTargetScaler,
    /// Point the apex Service at the primary (`KubernetesRouter.Reconcile`).
    ReconcileApexService,
    /// Create or take over the routing objects of the mesh/ingress provider.
    ReconcileMeshRouter,
    /// Scale the target to zero.
    ScaleToZero,
    /// Scale the target up from zero.
    ScaleFromZero,
    /// Apply these weights.
    SetRoutes(Routes),
    /// Copy the target's template (and configs) to the primary.
    Promote,
    /// Write [`Plan::status`] here.
    WriteStatus,
    /// Record a Kubernetes Event (and send it to the event webhooks).
    Event(Event),
    /// Send an alert.
    Alert(Alert),
    /// Call the post-rollout webhooks with this phase (their results only produce events).
    RunPostRolloutHooks {
        /// `Succeeded` or `Failed`.
        phase: CanaryPhase,
    },
    /// Update an operator metric.
    Metric(MetricUpdate),
}

/// Type of a Kubernetes Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `Normal` (Flagger's `recordEventInfof`).
    Normal,
    /// `Warning` (`recordEventWarningf` and `recordEventErrorf`).
    Warning,
}

/// A Kubernetes Event on the Canary, reason [`EVENT_REASON`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Normal or Warning.
    pub type_: EventType,
    /// The message.
    pub message: String,
}

impl Event {
    /// A `Normal` event.
    pub fn normal(message: impl Into<String>) -> Self {
        Self {
            type_: EventType::Normal,
            message: message.into(),
        }
    }

    /// A `Warning` event.
    pub fn warning(message: impl Into<String>) -> Self {
        Self {
            type_: EventType::Warning,
            message: message.into(),
        }
    }

    /// The event's reason ([`EVENT_REASON`]).
    pub fn reason(&self) -> &'static str {
        EVENT_REASON
    }
}

/// An alert for the canary's alert providers (or the global notifier).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// Severity.
    pub severity: AlertSeverity,
    /// The message.
    pub message: String,
    /// Whether the canary's metadata fields (target, strategy, ...) are attached.
    pub with_metadata: bool,
}

/// An update of Flagger's operator metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricUpdate {
    /// `flagger_canary_successes_total` + 1.
    Success {
        /// `deployment_strategy` label: `canary`, `blue-green` or `ab-testing`.
        deployment_strategy: &'static str,
        /// `analysis_status` label: `completed` or `skipped`.
        analysis_status: &'static str,
    },
    /// `flagger_canary_failures_total` + 1.
    Failure {
        /// `deployment_strategy` label.
        deployment_strategy: &'static str,
        /// `analysis_status` label (`completed`).
        analysis_status: &'static str,
    },
}

/// Errors of [`decide`]: the driver answered something other than what was asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecideError {
    /// The answer at `position` does not match the request made there.
    #[error("answer {position} does not match the request {request:?}")]
    AnswerMismatch {
        /// Index of the answer.
        position: usize,
        /// The request decide made at that point.
        request: Request,
    },
}

/// The time of the last analysis tick recorded in a Canary's status (`status.lastTickTime`): the value
/// for [`Observed::last_tick`]. `None` when there is no status or no tick was recorded yet.
pub fn last_tick(status: Option<&CanaryStatus>) -> Option<Timestamp> {
    status?.last_tick_time.as_ref().map(|t| t.0)
}

/// The weights Flagger's no-op router (`kubernetes` provider) reports: all traffic on the canary once
/// blue/green iterations started, on the primary otherwise.
pub fn kubernetes_routes(status: Option<&CanaryStatus>) -> Routes {
    if status.is_some_and(|s| s.iterations() > 0) {
        Routes {
            primary: 0,
            canary: 100,
            mirrored: false,
        }
    } else {
        Routes::PRIMARY
    }
}

/// What Flagger 1.44 does on this tick for the observed canary, given the answers to the checks run so far.
pub fn decide(observed: &Observed<'_>, answers: &Answers, now: Timestamp) -> Result<Step, DecideError> {
    engine::run(observed, answers, now)
}
