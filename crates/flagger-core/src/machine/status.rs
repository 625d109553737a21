//! Flagger's status writes (`SyncStatus`, `setStatusPhase`, `SetStatusWeight`/`FailedChecks`/`Iterations`)
//! applied to a working copy of the status, and change detection (`hasSpecChanged`, `HasConfigChanged`).

use std::collections::BTreeMap;

use flagger_api::{CanaryPhase, CanaryStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::TargetRevision;

/// The status as written so far on this tick.
pub(super) struct Working {
    pub(super) status: CanaryStatus,
    target_kind: String,
    now: Time,
}

impl Working {
    pub(super) fn new(status: CanaryStatus, target_kind: &str, now: Timestamp) -> Self {
        Self {
            status,
            target_kind: target_kind.to_owned(),
            now: Time(now),
        }
    }

    fn set_conditions(&mut self, phase: CanaryPhase) {
        if let Some(c) = self
            .status
            .conditions_for_phase(phase, &self.target_kind, &self.now)
        {
            self.status.conditions = Some(c);
        }
    }

    /// `setPhaseInitializing`: the phase and the condition.
    pub(super) fn set_initializing(&mut self) {
        self.set_conditions(CanaryPhase::Initializing);
        self.status.phase = Some(CanaryPhase::Initializing);
    }

    /// `SyncStatus`: phase, weight, failed checks and iterations from the arguments (zeros unless given),
    /// `lastAppliedSpec` and `trackedConfigs` from the current target; Initialized also sets
    /// `lastPromotedSpec`.
    pub(super) fn sync(
        &mut self,
        target: &TargetRevision,
        phase: CanaryPhase,
        weight: i32,
        failed_checks: i32,
        iterations: i32,
    ) {
        self.set_conditions(phase);
        let s = &mut self.status;
        s.phase = Some(phase);
        s.canary_weight = Some(weight);
        s.failed_checks = Some(failed_checks);
        s.iterations = Some(iterations);
        s.last_applied_spec = Some(target.spec_hash.clone());
        if phase == CanaryPhase::Initialized {
            s.last_promoted_spec = Some(target.spec_hash.clone());
        }
        // An empty map and no map mean the same (no tracked configs); keep what is stored.
        if let Some(configs) = &target.configs
            && !(configs.is_empty() && s.tracked_configs.is_none())
        {
            s.tracked_configs = Some(configs.clone());
        }
    }

    /// `setStatusPhase`: phases other than Progressing/Waiting/Promoting zero the weight and iterations
    /// (WaitingPromotion: iterations = `analysis_iterations - 1`); Initialized and Succeeded promote
    /// `lastAppliedSpec`.
    pub(super) fn set_phase(&mut self, phase: CanaryPhase, analysis_iterations: i32) {
        let s = &mut self.status;
        s.phase = Some(phase);
        if !matches!(
            phase,
            CanaryPhase::Progressing | CanaryPhase::Waiting | CanaryPhase::Promoting
        ) {
            s.canary_weight = Some(0);
            s.iterations = Some(0);
            if phase == CanaryPhase::WaitingPromotion {
                s.iterations = Some(analysis_iterations - 1);
            }
        }
        if matches!(phase, CanaryPhase::Initialized | CanaryPhase::Succeeded) {
            s.last_promoted_spec.clone_from(&s.last_applied_spec);
        }
        self.set_conditions(phase);
    }

    pub(super) fn set_weight(&mut self, weight: i32) {
        self.status.canary_weight = Some(weight);
    }

    pub(super) fn set_failed_checks(&mut self, n: i32) {
        self.status.failed_checks = Some(n);
    }

    pub(super) fn set_iterations(&mut self, n: i32) {
        self.status.iterations = Some(n);
    }

    pub(super) fn phase(&self) -> CanaryPhase {
        self.status.phase()
    }

    /// The status to write, or `None` when it equals `original`. `lastTransitionTime` moves to now only
    /// when another field changed.
    pub(super) fn finish(self, original: &CanaryStatus) -> Option<CanaryStatus> {
        let mut status = self.status;
        status
            .last_transition_time
            .clone_from(&original.last_transition_time);
        if &status == original {
            return None;
        }
        status.last_transition_time = Some(self.now);
        Some(status)
    }
}

/// `hasSpecChanged`: no `lastAppliedSpec` → changed; equal to `lastPromotedSpec` → not changed (a revert
/// to the promoted revision starts nothing); else changed when it differs from `lastAppliedSpec`.
pub(super) fn target_changed(status: &CanaryStatus, spec_hash: &str) -> bool {
    let applied = status.last_applied_spec.as_deref().unwrap_or_default();
    if applied.is_empty() {
        return true;
    }
    if status.last_promoted_spec.as_deref() == Some(spec_hash) {
        return false;
    }
    applied != spec_hash
}

/// `HasConfigChanged`: a tracked config was added, removed or has a new checksum.
pub(super) fn configs_changed(status: &CanaryStatus, configs: Option<&BTreeMap<String, String>>) -> bool {
    let Some(current) = configs else {
        return false;
    };
    match &status.tracked_configs {
        None => !current.is_empty(),
        Some(tracked) => {
            tracked.len() != current.len() || current.iter().any(|(k, v)| tracked.get(k) != Some(v))
        }
    }
}

/// Whether the target or its configs changed (`HasTargetChanged || HaveDependenciesChanged`).
pub(super) fn revision_changed(status: &CanaryStatus, target: &TargetRevision) -> bool {
    target_changed(status, &target.spec_hash) || configs_changed(status, target.configs.as_ref())
}
