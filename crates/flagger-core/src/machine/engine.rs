//! One tick of `advanceCanary`, replayed against the answers gathered so far.

use std::time::Duration;

use flagger_api::{AlertSeverity, CanaryAnalysis, CanaryPhase, CanaryStatus, DeploymentStrategy, HookType};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::status::{Working, revision_changed};
use super::{
    Action, Alert, Answer, Answers, DecideError, Event, MetricUpdate, MetricsOutcome, Observed, Plan,
    Readiness, Request, Routes, Step,
};
use crate::hash::is_own_spec_hash;
use crate::provider::MeshProvider;
use crate::weights::Ladder;

/// Why a tick stopped before its end.
enum Halt {
    /// A check has no answer yet.
    Need(Request),
    /// The answers do not fit the requests.
    Err(DecideError),
}

type R<T> = Result<T, Halt>;

use CanaryPhase as P;

/// Phases that only react to a change of the target: no timer.
fn is_idle(phase: CanaryPhase) -> bool {
    matches!(
        phase,
        P::Initialized | P::Succeeded | P::Failed | P::Terminating | P::Terminated
    )
}

pub(super) fn run(obs: &Observed<'_>, answers: &Answers, now: Timestamp) -> Result<Step, DecideError> {
    let canary = obs.canary;
    let original = canary.status.clone().unwrap_or_default();
    let interval = canary.analysis_interval();
    let signed_interval = SignedDuration::try_from(interval).unwrap_or(SignedDuration::MAX);
    let next_tick = obs
        .last_tick
        .map(|t| t.checked_add(signed_interval).unwrap_or(Timestamp::MAX));
    let due = next_tick.is_none_or(|next| now >= next);
    let remaining = next_tick
        .map(|next| Duration::try_from(now.duration_until(next)).unwrap_or_default())
        .filter(|_| !due);

    let mut ctx = Ctx::new(obs, answers, now, &original);

    // syncHandler: a canary without conditions enters Initializing before its first tick.
    if original.conditions.is_none() {
        ctx.st.set_initializing();
        ctx.status_at = Some(0);
        ctx.s0 = ctx.st.status.clone();
        ctx.p0 = P::Initializing;
    }

    // Migration from Go Flagger: its spec hashes cannot be reproduced, so a foreign `lastAppliedSpec` is
    // translated on first sight.
    // - Initialized/Succeeded: when the primary runs the current target, the current target is the promoted
    //   revision: both hashes are re-baselined silently (with an event). When it does not, the target
    //   changed while no operator watched: the foreign hashes stay, so the change starts an analysis.
    // - Any other phase (a release under way, waiting, or failed): the current target is the revision the
    //   status is about, so `lastAppliedSpec` is re-baselined and nothing restarts; a foreign
    //   `lastPromotedSpec` equal to it is re-baselined too, one that differs is kept until the next
    //   promotion.
    let applied = ctx.s0.last_applied_spec.clone().unwrap_or_default();
    if !applied.is_empty() && !is_own_spec_hash(&applied) && !obs.target.spec_hash.is_empty() {
        let settled = matches!(ctx.p0, P::Initialized | P::Succeeded);
        if !settled || obs.primary_runs_target {
            let current = Some(obs.target.spec_hash.clone());
            if settled || ctx.s0.last_promoted_spec.as_deref() == Some(applied.as_str()) {
                ctx.st.status.last_promoted_spec.clone_from(&current);
            }
            ctx.st.status.last_applied_spec = current;
            if let Some(configs) = &obs.target.configs {
                ctx.st.status.tracked_configs = Some(configs.clone());
            }
            ctx.status_at = Some(0);
            ctx.s0 = ctx.st.status.clone();
            ctx.normal(format!(
                "Adopted {}.{} from Flagger: its {} revision was recorded without a new analysis",
                canary.spec.target_ref.name,
                canary.metadata.namespace.as_deref().unwrap_or_default(),
                if settled { "promoted" } else { "current" },
            ));
        }
    }

    if canary.is_suspended() {
        if !due {
            return Ok(Step::Done(Box::new(ctx.finish(&original, None, remaining))));
        }
        ctx.normal("skipping canary run as object is suspended".to_owned());
        return Ok(Step::Done(Box::new(ctx.finish(
            &original,
            Some(now),
            Some(interval),
        ))));
    }

    let phase = ctx.p0;
    if matches!(phase, P::Terminating | P::Terminated) {
        return Ok(Step::Done(Box::new(ctx.finish(&original, None, None))));
    }
    let changed = revision_changed(&ctx.s0, &obs.target);
    // A new revision restarts the analysis at once, unless the tick would stop at the primary check.
    let restart = matches!(phase, P::Progressing | P::WaitingPromotion)
        && changed
        && (canary.skip_analysis() || obs.primary.is_ready());
    if !is_idle(phase) && !due && !restart {
        return Ok(Step::Done(Box::new(ctx.finish(&original, None, remaining))));
    }

    match ctx.tick() {
        Ok(()) => {
            let timed = !is_idle(ctx.st.phase());
            let (tick, requeue) = if timed {
                (Some(now), Some(interval))
            } else if is_idle(phase) && changed && ctx.st.phase() == phase {
                // A change that could not start yet (e.g. the primary is not ready): look again.
                (None, Some(interval))
            } else {
                (None, None)
            };
            Ok(Step::Done(Box::new(ctx.finish(&original, tick, requeue))))
        }
        Err(Halt::Need(request)) => Ok(Step::Need(request)),
        Err(Halt::Err(e)) => Err(e),
    }
}

struct Ctx<'a> {
    obs: &'a Observed<'a>,
    answers: &'a [Answer],
    cursor: usize,
    actions: Vec<Action>,
    st: Working,
    /// Position in `actions` of the last status write.
    status_at: Option<usize>,
    /// The status at the start of the tick (Flagger's in-memory copy, which its writes do not update).
    s0: CanaryStatus,
    /// The phase at the start of the tick.
    p0: CanaryPhase,
    /// The analysis settings (the kubernetes provider coerces them in memory).
    analysis: CanaryAnalysis,
    name: String,
    namespace: String,
    target: String,
}

impl<'a> Ctx<'a> {
    fn new(obs: &'a Observed<'a>, answers: &'a Answers, now: Timestamp, original: &CanaryStatus) -> Self {
        let c = obs.canary;
        Self {
            obs,
            answers: answers.as_slice(),
            cursor: 0,
            actions: Vec::new(),
            st: Working::new(original.clone(), &c.spec.target_ref.kind, now),
            status_at: None,
            s0: original.clone(),
            p0: original.phase(),
            analysis: c.analysis().cloned().unwrap_or_default(),
            name: c.metadata.name.clone().unwrap_or_default(),
            namespace: c.metadata.namespace.clone().unwrap_or_default(),
            target: c.spec.target_ref.name.clone(),
        }
    }

    fn finish(mut self, original: &CanaryStatus, tick: Option<Timestamp>, requeue: Option<Duration>) -> Plan {
        let status = self.st.finish(original);
        if status.is_some() {
            let at = self
                .status_at
                .unwrap_or(self.actions.len())
                .min(self.actions.len());
            self.actions.insert(at, Action::WriteStatus);
        }
        Plan {
            actions: self.actions,
            status,
            tick,
            requeue_after: requeue,
        }
    }

    // ----- plan building -----

    fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    fn normal(&mut self, message: String) {
        self.push(Action::Event(Event::normal(message)));
    }

    fn warning(&mut self, message: String) {
        self.push(Action::Event(Event::warning(message)));
    }

    fn alert(&mut self, severity: AlertSeverity, message: String, with_metadata: bool) {
        self.push(Action::Alert(Alert {
            severity,
            message,
            with_metadata,
        }));
    }

    fn set_routes(&mut self, primary: i32, canary: i32, mirrored: bool) {
        self.push(Action::SetRoutes(Routes {
            primary,
            canary,
            mirrored,
        }));
    }

    fn mark_status(&mut self) {
        self.status_at = Some(self.actions.len());
    }

    fn sync(&mut self, phase: CanaryPhase, weight: i32, failed_checks: i32, iterations: i32) {
        self.st
            .sync(&self.obs.target, phase, weight, failed_checks, iterations);
        self.mark_status();
    }

    fn set_phase(&mut self, phase: CanaryPhase) {
        self.st.set_phase(phase, self.analysis.iterations());
        self.mark_status();
    }

    fn set_weight(&mut self, weight: i32) {
        self.st.set_weight(weight);
        self.mark_status();
    }

    fn set_iterations(&mut self, n: i32) {
        self.st.set_iterations(n);
        self.mark_status();
    }

    fn add_failed_check(&mut self) {
        self.st.set_failed_checks(self.s0.failed_checks() + 1);
        self.mark_status();
    }

    fn metric(&mut self, success: bool, analysis_status: &'static str) {
        let deployment_strategy = self.obs.canary.strategy().as_str();
        self.push(Action::Metric(if success {
            MetricUpdate::Success {
                deployment_strategy,
                analysis_status,
            }
        } else {
            MetricUpdate::Failure {
                deployment_strategy,
                analysis_status,
            }
        }));
    }

    // ----- answers -----

    fn next_answer(&mut self, request: Request) -> R<&'a Answer> {
        match self.answers.get(self.cursor) {
            None => Err(Halt::Need(request)),
            Some(answer) => {
                let fits = matches!(
                    (&request, answer),
                    (Request::Webhook { .. }, Answer::Webhook(_)) | (Request::Metrics, Answer::Metrics(_))
                );
                if !fits {
                    return Err(Halt::Err(DecideError::AnswerMismatch {
                        position: self.cursor,
                        request,
                    }));
                }
                self.cursor += 1;
                Ok(answer)
            }
        }
    }

    fn call_hook(&mut self, hook: &Hook, phase: CanaryPhase) -> R<Result<(), String>> {
        let request = Request::Webhook {
            index: hook.index,
            name: hook.name.clone(),
            hook_type: hook.hook_type,
            phase,
        };
        match self.next_answer(request)? {
            Answer::Webhook(result) => Ok(result.clone()),
            Answer::Metrics(_) => Ok(Err(String::new())),
        }
    }

    fn run_metrics(&mut self) -> R<MetricsOutcome> {
        match self.next_answer(Request::Metrics)? {
            Answer::Metrics(outcome) => Ok(outcome.clone()),
            Answer::Webhook(_) => Ok(MetricsOutcome::default()),
        }
    }

    /// The webhooks of `type` in order. Rollout also takes webhooks without a type.
    fn hooks(&self, hook_type: HookType) -> Vec<Hook> {
        self.analysis
            .webhooks()
            .iter()
            .enumerate()
            .filter(|(_, w)| w.hook_type() == hook_type)
            .map(|(index, w)| Hook {
                index,
                name: w.name.clone(),
                hook_type,
                mute_alert: w.mute_alert == Some(true),
            })
            .collect()
    }

    // ----- observations -----

    fn has_scaler(&self) -> bool {
        self.obs.canary.spec.autoscaler_ref.is_some()
    }

    fn is_kubernetes(&self) -> bool {
        self.obs.provider == MeshProvider::Kubernetes
    }

    fn is_app_mesh(&self) -> bool {
        matches!(
            self.obs.provider,
            MeshProvider::AppMesh | MeshProvider::AppMeshV1beta2
        )
    }

    fn kind(&self) -> &str {
        &self.obs.canary.spec.target_ref.kind
    }

    /// `GetRoutes`; the kubernetes provider's no-op router reports all traffic on the canary once
    /// iterations started.
    fn routes(&self) -> Routes {
        if self.is_kubernetes() {
            super::kubernetes_routes(Some(&self.s0))
        } else {
            self.obs.routes
        }
    }

    fn primary_not_ready(&self, message: &str) -> String {
        let (ns, t) = (&self.namespace, &self.target);
        if self.kind() == "DaemonSet" {
            format!("primary daemonset {t}-primary.{ns} not ready: {message}")
        } else {
            format!("{t}-primary.{ns} not ready: {message}")
        }
    }

    fn canary_not_ready(&self, message: &str, retriable: bool) -> String {
        let (ns, t) = (&self.namespace, &self.target);
        if self.kind() == "DaemonSet" {
            format!("canary damonset {t}.{ns} not ready with retryable {retriable}: {message}")
        } else {
            format!("canary deployment {t}.{ns} not ready: {message}")
        }
    }

    fn ladder(&self) -> Ladder {
        let positive = |w: i32| u32::try_from(w).unwrap_or(0);
        Ladder {
            step_weight: positive(self.analysis.step_weight()),
            step_weights: self
                .analysis
                .step_weights()
                .iter()
                .map(|&w| positive(w))
                .collect(),
            max_weight: positive(self.analysis.max_weight.unwrap_or(0)),
        }
    }

    // ----- the tick -----

    fn tick(&mut self) -> R<()> {
        let phase = self.p0;
        let init = matches!(phase, P::Unset | P::Initializing);
        let skip = self.obs.canary.skip_analysis();

        self.push(Action::InitializeServices);
        if !skip && init {
            self.push(Action::CheckMetricProviders);
        }
        if self.is_app_mesh() {
            self.push(Action::ReconcileMeshRouter);
        }
        self.push(Action::EnsurePrimary);
        if let (true, false, Readiness::NotReady { message, retriable }) = (init, skip, &self.obs.primary) {
            self.warning(self.primary_not_ready(message));
            if !retriable {
                self.rollback();
            }
            return Ok(());
        }
        if self.has_scaler() {
            self.push(Action::ReconcilePrimaryScaler { init: true });
            if init {
                self.push(Action::PauseTargetScaler);
            }
        }
        self.push(Action::ReconcileApexService);
        if init {
            self.push(Action::ScaleToZero);
        }
        if !self.is_app_mesh() {
            self.push(Action::ReconcileMeshRouter);
        }
        if init {
            self.sync(P::Initialized, 0, 0, 0);
            self.normal(format!("Initialization done! {}.{}", self.name, self.namespace));
            self.alert(
                AlertSeverity::Info,
                format!("New {} detected, initialization completed.", self.kind()),
                true,
            );
            return Ok(());
        }

        // shouldAdvance
        let changed = revision_changed(&self.s0, &self.obs.target);
        match phase {
            P::Progressing | P::Waiting | P::WaitingPromotion | P::Promoting | P::Finalising => {}
            P::Failed => {
                let s = &self.s0;
                let (w, f, i) = (s.canary_weight(), s.failed_checks(), s.iterations());
                self.sync(P::Failed, w, f, i);
                if !changed {
                    return Ok(());
                }
            }
            _ if !changed => return Ok(()),
            _ => {}
        }

        if let (false, Readiness::NotReady { message, retriable }) = (skip, &self.obs.primary) {
            let message = self.primary_not_ready(message);
            self.warning(message.clone());
            if !retriable {
                if matches!(phase, P::Promoting | P::Finalising) {
                    self.failed_promotion(&message);
                } else {
                    self.rollback();
                }
            }
            return Ok(());
        }

        let routes = self.routes();

        // checkCanaryStatus: a new revision waits for the confirm-rollout gates, then starts.
        if !matches!(
            phase,
            P::Progressing | P::WaitingPromotion | P::Promoting | P::Finalising
        ) {
            let current = self.st.phase();
            if let Some(hook) =
                self.first_closed_gate(HookType::ConfirmRollout, current, "Confirm-rollout")?
            {
                if current != P::Waiting {
                    self.set_phase(P::Waiting);
                    self.halt_for_approval(&hook, "approval", "Canary is waiting for approval.");
                }
                return Ok(());
            }
            self.normal(format!(
                "New revision detected! Scaling up {}.{}",
                self.target, self.namespace
            ));
            self.alert(
                AlertSeverity::Info,
                "New revision detected, progressing canary analysis.".to_owned(),
                true,
            );
            if self.has_scaler() {
                self.push(Action::ResumeTargetScaler);
            }
            self.push(Action::ScaleFromZero);
            self.sync(P::Progressing, 0, 0, 0);
            return Ok(());
        }

        // hasCanaryRevisionChanged
        if matches!(phase, P::Progressing | P::WaitingPromotion) && changed {
            self.normal(format!(
                "New revision detected! Restarting analysis for {}.{}",
                self.target, self.namespace
            ));
            self.set_routes(100, 0, false);
            self.sync(P::Progressing, 0, 0, 0);
            return Ok(());
        }

        // Crash safety (not in Flagger): a release under analysis whose target is scaled to zero was being
        // rolled back when the operator stopped (rollback scales down before it writes Failed). flagger-rs
        // counts a Deployment at zero replicas as not ready, so waiting for it would wait forever: finish
        // the rollback.
        if matches!(phase, P::Progressing | P::WaitingPromotion) && self.obs.target_scaled_to_zero {
            self.rollback();
            return Ok(());
        }

        // In Finalising all traffic is on the primary and the canary is being scaled down; flagger-rs
        // counts a Deployment at zero replicas as not ready (Flagger does not), so a Finalising tick
        // repeated after its status write was lost must not wait for the canary.
        if let (false, Readiness::NotReady { message, retriable }) =
            (phase == P::Finalising, &self.obs.canary_workload)
        {
            self.warning(self.canary_not_ready(message, *retriable));
            if !retriable {
                // Flagger means to say this (its `Progress deadline exceeded` alert) but returns before it
                // gets there; flagger-rs says it.
                self.warning(format!(
                    "Rolling back {}.{} progress deadline exceeded {message}",
                    self.name, self.namespace
                ));
                self.alert(
                    AlertSeverity::Error,
                    format!("Progress deadline exceeded {message}"),
                    false,
                );
                self.rollback();
            }
            return Ok(());
        }

        if skip {
            self.set_routes(100, 0, false);
            self.copying_event();
            self.push(Action::Promote);
            if self.has_scaler() {
                self.push(Action::ReconcilePrimaryScaler { init: false });
                self.push(Action::PauseTargetScaler);
            }
            self.push(Action::ScaleToZero);
            self.set_phase(P::Succeeded);
            self.metric(true, "skipped");
            self.push(Action::RunPostRolloutHooks { phase: P::Succeeded });
            self.normal(format!(
                "Promotion completed! Canary analysis was skipped for {}.{}",
                self.target, self.namespace
            ));
            self.alert(
                AlertSeverity::Info,
                "Canary analysis was skipped, promotion finished.".to_owned(),
                false,
            );
            return Ok(());
        }

        if matches!(phase, P::Progressing | P::Waiting | P::WaitingPromotion) {
            for hook in self.hooks(HookType::Rollback) {
                if self.call_hook(&hook, phase)?.is_ok() {
                    self.warning(format!("Rollback check {} passed", hook.name));
                    self.warning(format!(
                        "Rolling back {}.{} manual webhook invoked",
                        self.name, self.namespace
                    ));
                    self.alert(
                        AlertSeverity::Warn,
                        "Rolling back manual webhook invoked".to_owned(),
                        false,
                    );
                    self.rollback();
                    return Ok(());
                }
                self.normal(format!("Rollback hook {} not signaling a rollback", hook.name));
            }
        }

        if phase == P::Promoting {
            if self.has_scaler() {
                self.push(Action::ReconcilePrimaryScaler { init: false });
            }
            self.promotion_traffic_shift(routes);
            return Ok(());
        }

        if phase == P::Finalising {
            if self.has_scaler() {
                self.push(Action::PauseTargetScaler);
            }
            self.push(Action::ScaleToZero);
            self.set_phase(P::Succeeded);
            self.metric(true, "completed");
            self.push(Action::RunPostRolloutHooks { phase: P::Succeeded });
            self.normal(format!(
                "Promotion completed! Scaling down {}.{}",
                self.target, self.namespace
            ));
            self.alert(
                AlertSeverity::Info,
                "Canary analysis completed successfully, promotion finished.".to_owned(),
                false,
            );
            return Ok(());
        }

        if matches!(phase, P::Progressing | P::WaitingPromotion)
            && self.s0.failed_checks() >= self.obs.canary.analysis_threshold()
        {
            self.rollback();
            return Ok(());
        }

        // Crash safety (not in Flagger): the router is ahead of the status, so the status write of the last
        // canary step was lost (the operator stopped between SetRoutes and the write). Record that step
        // instead of taking another one, so no step is taken twice and each weight gets its interval.
        if phase == P::Progressing
            && !self.is_kubernetes()
            && self.analysis.strategy() == DeploymentStrategy::Canary
            && !routes.mirrored
            && routes.canary > self.s0.canary_weight()
        {
            self.set_weight(routes.canary);
            self.normal(format!(
                "Advance {}.{} canary weight {}",
                self.name, self.namespace, routes.canary
            ));
            return Ok(());
        }

        // The checks: pre-rollout before any traffic reached the canary, else rollout hooks and metrics.
        let mirror = self.analysis.mirror();
        if routes.canary == 0 && self.s0.iterations() == 0 && !(mirror && routes.mirrored) {
            self.normal(format!(
                "Starting canary analysis for {}.{}",
                self.target, self.namespace
            ));
            for hook in self.hooks(HookType::PreRollout) {
                if let Err(e) = self.call_hook(&hook, P::Progressing)? {
                    self.warning(format!(
                        "Halt {}.{} advancement pre-rollout check {} failed {e}",
                        self.name, self.namespace, hook.name
                    ));
                    self.add_failed_check();
                    return Ok(());
                }
                self.normal(format!("Pre-rollout check {} passed", hook.name));
            }
        } else {
            for hook in self.hooks(HookType::Rollout) {
                if let Err(e) = self.call_hook(&hook, P::Progressing)? {
                    self.warning(format!(
                        "Halt {}.{} advancement external check {} failed {e}",
                        self.name, self.namespace, hook.name
                    ));
                    self.add_failed_check();
                    return Ok(());
                }
            }
            let outcome = self.run_metrics()?;
            for event in outcome.events {
                self.push(Action::Event(event));
            }
            if !outcome.passed {
                self.add_failed_check();
                return Ok(());
            }
        }

        if self.is_kubernetes() {
            if !self.analysis.match_conditions().is_empty() {
                self.warning("A/B testing is not supported when using the kubernetes provider".to_owned());
                self.analysis.match_ = None;
            }
            if self.analysis.iterations() < 1 {
                self.warning(
                    "Progressive traffic is not supported when using the kubernetes provider".to_owned(),
                );
                self.warning("Setting canaryAnalysis.iterations: 10".to_owned());
                self.analysis.iterations = Some(10);
            }
        }

        match self.analysis.strategy() {
            DeploymentStrategy::AbTesting => self.run_ab(),
            DeploymentStrategy::BlueGreen => self.run_blue_green(routes),
            DeploymentStrategy::Canary => {
                let ladder = self.ladder();
                let weight = u32::try_from(routes.canary).unwrap_or(0);
                if ladder.next_step(weight) > 0 {
                    if !routes.mirrored
                        && !matches!(phase, P::Promoting | P::WaitingPromotion | P::Finalising)
                    {
                        let gate = HookType::ConfirmTrafficIncrease;
                        if let Some(hook) =
                            self.first_closed_gate(gate, P::Progressing, "Confirm-traffic-increase")?
                        {
                            self.halt_for_approval(
                                &hook,
                                "traffic increase approval",
                                "Canary traffic increase is waiting for approval.",
                            );
                            return Ok(());
                        }
                    }
                    self.run_canary(routes, &ladder)
                } else {
                    Ok(())
                }
            }
        }
    }

    fn copying_event(&mut self) {
        let (t, ns) = (&self.target, &self.namespace);
        let message = format!("Copying {t}.{ns} template spec to {t}-primary.{ns}");
        self.normal(message);
    }

    fn promote(&mut self) {
        self.copying_event();
        self.push(Action::Promote);
        self.set_phase(P::Promoting);
    }

    /// `runConfirmPromotionHooks`: whether every confirm-promotion gate is open.
    fn confirm_promotion(&mut self) -> R<bool> {
        let Some(hook) =
            self.first_closed_gate(HookType::ConfirmPromotion, P::Progressing, "Confirm-promotion")?
        else {
            return Ok(true);
        };
        if self.p0 == P::WaitingPromotion {
            self.set_iterations(self.analysis.iterations() - 1);
        } else {
            self.set_phase(P::WaitingPromotion);
            self.halt_for_approval(
                &hook,
                "promotion approval",
                "Canary promotion is waiting for approval.",
            );
        }
        Ok(false)
    }

    /// Calls the confirm-* gates of `gate` in order with the payload `phase`. Each open gate records the
    /// event `<label> check <name> passed`; the first closed one stops the walk and is returned. Closed
    /// gates never count as failed checks.
    fn first_closed_gate(&mut self, gate: HookType, phase: CanaryPhase, label: &str) -> R<Option<Hook>> {
        for hook in self.hooks(gate) {
            if self.call_hook(&hook, phase)?.is_err() {
                return Ok(Some(hook));
            }
            self.normal(format!("{label} check {} passed", hook.name));
        }
        Ok(None)
    }

    /// The warning event `Halt <name>.<ns> advancement waiting for <what> <hook>` and, unless the hook mutes
    /// it, the warn alert `alert`.
    fn halt_for_approval(&mut self, hook: &Hook, what: &str, alert: &str) {
        self.warning(format!(
            "Halt {}.{} advancement waiting for {what} {}",
            self.name, self.namespace, hook.name
        ));
        if !hook.mute_alert {
            self.alert(AlertSeverity::Warn, alert.to_owned(), false);
        }
    }

    fn run_canary(&mut self, routes: Routes, ladder: &Ladder) -> R<()> {
        let max_weight = i32::try_from(ladder.max_weight()).unwrap_or(100);
        let Routes {
            primary: mut pw,
            canary: mut cw,
            mut mirrored,
        } = routes;
        if cw < max_weight {
            let step = i32::try_from(ladder.next_step(u32::try_from(cw).unwrap_or(0))).unwrap_or(100);
            if self.analysis.mirror() && cw == 0 {
                if mirrored {
                    mirrored = false;
                    pw = 100 - step;
                    cw = step;
                } else {
                    mirrored = true;
                    pw = 100;
                    cw = 0;
                }
            } else {
                pw = (pw - step).max(0);
                cw = (cw + step).min(100);
            }
            self.set_routes(pw, cw, mirrored);
            self.set_weight(cw);
            self.normal(format!(
                "Advance {}.{} canary weight {cw}",
                self.name, self.namespace
            ));
            return Ok(());
        }
        if self.confirm_promotion()? {
            self.promote();
        }
        Ok(())
    }

    /// Counts iteration `done + 1` of `n` (A/B and blue/green) with Flagger's event.
    fn advance_iteration(&mut self, done: i32, n: i32) {
        self.set_iterations(done + 1);
        self.normal(format!(
            "Advance {}.{} canary iteration {}/{n}",
            self.name,
            self.namespace,
            done + 1
        ));
    }

    fn run_ab(&mut self) -> R<()> {
        let n = self.analysis.iterations();
        let done = self.s0.iterations();
        if n > done {
            self.set_routes(0, 100, false);
            self.advance_iteration(done, n);
            return Ok(());
        }
        if !self.confirm_promotion()? {
            return Ok(());
        }
        if n == done {
            self.promote();
        }
        Ok(())
    }

    fn run_blue_green(&mut self, routes: Routes) -> R<()> {
        let n = self.analysis.iterations();
        let done = self.s0.iterations();
        let kubernetes = self.is_kubernetes();
        let mirror = self.analysis.mirror();
        if n > done {
            if !kubernetes && mirror && !routes.mirrored {
                self.set_routes(100, 0, true);
            }
            self.advance_iteration(done, n);
            return Ok(());
        }
        if !self.confirm_promotion()? {
            return Ok(());
        }
        if n == done {
            if !kubernetes {
                self.normal(if mirror {
                    "Stop traffic mirroring and route all traffic to canary".to_owned()
                } else {
                    "Routing all traffic to canary".to_owned()
                });
                self.set_routes(0, 100, false);
            }
            self.set_iterations(done + 1);
            return Ok(());
        }
        if n < done {
            self.promote();
        }
        Ok(())
    }

    fn promotion_traffic_shift(&mut self, routes: Routes) {
        if self.is_kubernetes() {
            self.set_phase(P::Finalising);
            return;
        }
        let step = self.analysis.step_weight_promotion();
        if step == 0 {
            self.normal("Routing all traffic to primary".to_owned());
            self.set_routes(100, 0, false);
            self.set_phase(P::Finalising);
            return;
        }
        // Crash safety (not in Flagger): a shift whose status write was lost. All traffic already on the
        // primary finalises (Flagger would stay in Promoting forever); a canary weight below the status
        // records the shift instead of shifting again.
        if routes.canary == 0 {
            self.set_phase(P::Finalising);
            return;
        }
        if routes.canary < self.s0.canary_weight() {
            self.set_weight(routes.canary);
            return;
        }
        if routes.canary > 0 {
            let pw = (routes.primary + step).min(100);
            let cw = (routes.canary - step).max(0);
            self.set_routes(pw, cw, false);
            self.normal(format!(
                "Advance {}.{} primary weight {pw}",
                self.name, self.namespace
            ));
            if pw == 100 {
                self.set_phase(P::Finalising);
            } else {
                self.set_weight(cw);
            }
        }
    }

    fn rollback(&mut self) {
        let failed = self.s0.failed_checks();
        if failed >= self.obs.canary.analysis_threshold() {
            self.warning(format!(
                "Rolling back {}.{} failed checks threshold reached {failed}",
                self.name, self.namespace
            ));
            self.alert(
                AlertSeverity::Error,
                format!("Failed checks threshold reached {failed}"),
                false,
            );
        }
        self.set_routes(100, 0, false);
        self.warning(format!(
            "Canary failed! Scaling down {}.{}",
            self.name, self.namespace
        ));
        if self.has_scaler() {
            self.push(Action::PauseTargetScaler);
        }
        self.push(Action::ScaleToZero);
        self.sync(P::Failed, 0, 0, 0);
        self.metric(false, "completed");
        self.push(Action::RunPostRolloutHooks { phase: P::Failed });
    }

    fn failed_promotion(&mut self, error: &str) {
        self.warning(format!(
            "Promotion of {}.{} failed, primary not ready: {error}",
            self.target, self.namespace
        ));
        self.alert(
            AlertSeverity::Error,
            format!("Promotion failed, primary not ready: {error}"),
            false,
        );
        self.set_routes(0, 100, false);
        self.sync(P::Failed, 100, 0, 0);
        self.metric(false, "completed");
        self.push(Action::RunPostRolloutHooks { phase: P::Failed });
    }
}

/// One webhook of the analysis.
struct Hook {
    index: usize,
    name: String,
    hook_type: HookType,
    mute_alert: bool,
}
