//! Observed state of a Canary, its phases, and the `Promoted` condition.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema;

/// The type of the single condition a Canary reports.
pub const PROMOTED_CONDITION: &str = "Promoted";

/// Observed state of a Canary: where its current release stands.
//
// Every field is optional so that a status read from the API server is written back exactly as it was;
// the accessor methods give the values with Flagger's defaults.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// Phase of the current release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<CanaryPhase>,

    /// Failed checks in the current analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_checks: Option<i32>,

    /// Traffic weight (percent) currently routed to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<i32>,

    /// Checks completed in the current A/B or Blue/Green analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<i32>,

    /// Checksums of the ConfigMaps and Secrets the target uses, keyed `configmap/<name>` or
    /// `secret/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracked_configs: Option<BTreeMap<String, String>>,

    /// Hash of the target revision last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_spec: Option<String>,

    /// Hash of the target revision last promoted to the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promoted_spec: Option<String>,

    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::date_time")]
    pub last_transition_time: Option<Time>,

    /// When flagger-rs last ran an analysis step for this canary. flagger-rs's addition to Flagger's
    /// status, used to resume the analysis schedule after a restart; Flagger ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::date_time")]
    pub last_tick_time: Option<Time>,

    /// Session affinity cookie (`name=value`) of the current release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_cookie: Option<String>,

    /// Session affinity cookie (`name=value`) that pins users to the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_session_affinity_cookie: Option<String>,

    /// Session affinity cookie of the previous release, expired on the next response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_session_affinity_cookie: Option<String>,

    /// Conditions of this canary (a single `Promoted` condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<CanaryCondition>>,
}

impl CanaryStatus {
    /// The phase ([`CanaryPhase::Unset`] when absent).
    pub fn phase(&self) -> CanaryPhase {
        self.phase.unwrap_or_default()
    }

    /// Failed checks (0 when absent).
    pub fn failed_checks(&self) -> i32 {
        self.failed_checks.unwrap_or(0)
    }

    /// Canary weight (0 when absent).
    pub fn canary_weight(&self) -> i32 {
        self.canary_weight.unwrap_or(0)
    }

    /// Iterations (0 when absent).
    pub fn iterations(&self) -> i32 {
        self.iterations.unwrap_or(0)
    }

    /// The condition of the given type, if present.
    pub fn condition(&self, type_: &str) -> Option<&CanaryCondition> {
        self.conditions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|c| c.type_ == type_)
    }

    /// The conditions to store when the canary enters `phase`, following Flagger: `None` when the current
    /// `Promoted` condition already has the same status and reason (nothing to write); otherwise the new
    /// list, which holds only the new `Promoted` condition. Its `lastTransitionTime` is kept from the old
    /// condition when the status did not change. `target_kind` is the target's kind (used in messages).
    pub fn conditions_for_phase(
        &self,
        phase: CanaryPhase,
        target_kind: &str,
        now: &Time,
    ) -> Option<Vec<CanaryCondition>> {
        let mut new = CanaryCondition::promoted(phase, target_kind, now);
        if let Some(current) = self.condition(PROMOTED_CONDITION) {
            if current.status == new.status && current.reason == new.reason {
                return None;
            }
            if current.status == new.status {
                new.last_transition_time.clone_from(&current.last_transition_time);
            }
        }
        Some(vec![new])
    }
}

/// Phase of a Canary's release.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum CanaryPhase {
    /// Written as `""`: the Canary has not been processed yet.
    #[default]
    #[serde(rename = "")]
    Unset,
    /// The primary workload and the Services are being created.
    Initializing,
    /// Initialization finished; waiting for a new revision of the target.
    Initialized,
    /// A new revision waits for a `confirm-rollout` gate.
    Waiting,
    /// Analysis of a new revision is under way.
    Progressing,
    /// Analysis passed; waiting for a `confirm-promotion` gate.
    WaitingPromotion,
    /// The primary is being updated to the new revision.
    Promoting,
    /// All traffic is being routed back to the primary and the canary scaled down.
    Finalising,
    /// The last release was promoted.
    Succeeded,
    /// The last release was rolled back.
    Failed,
    /// The Canary is being deleted and its objects reverted.
    Terminating,
    /// The Canary's objects were reverted (declared by Flagger, never set).
    Terminated,
}

impl CanaryPhase {
    /// Every phase, in Flagger's order.
    pub const ALL: [CanaryPhase; 12] = [
        Self::Unset,
        Self::Initializing,
        Self::Initialized,
        Self::Waiting,
        Self::Progressing,
        Self::WaitingPromotion,
        Self::Promoting,
        Self::Finalising,
        Self::Succeeded,
        Self::Failed,
        Self::Terminating,
        Self::Terminated,
    ];

    /// Flagger's name of the phase (`""` for [`CanaryPhase::Unset`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unset => "",
            Self::Initializing => "Initializing",
            Self::Initialized => "Initialized",
            Self::Waiting => "Waiting",
            Self::Progressing => "Progressing",
            Self::WaitingPromotion => "WaitingPromotion",
            Self::Promoting => "Promoting",
            Self::Finalising => "Finalising",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Terminating => "Terminating",
            Self::Terminated => "Terminated",
        }
    }
}

impl std::fmt::Display for CanaryPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of a condition.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

/// A condition of a Canary. Flagger reports one, of type `Promoted`, whose reason is the phase.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryCondition {
    /// Type of the condition (`Promoted`).
    #[serde(rename = "type")]
    pub type_: String,

    /// Whether the condition holds.
    pub status: ConditionStatus,

    /// When the condition was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::date_time")]
    pub last_update_time: Option<Time>,

    /// When the status of the condition last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::date_time")]
    pub last_transition_time: Option<Time>,

    /// Machine-readable reason for the status (the phase).
    pub reason: String,

    /// Human-readable explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl CanaryCondition {
    /// The `Promoted` condition for `phase`, with Flagger's status and message (`target_kind` is the
    /// target's kind, e.g. `Deployment`) and both times set to `now`.
    pub fn promoted(phase: CanaryPhase, target_kind: &str, now: &Time) -> Self {
        let (status, message) = match phase {
            CanaryPhase::Initialized => (
                ConditionStatus::True,
                format!("{target_kind} initialization completed."),
            ),
            CanaryPhase::Waiting | CanaryPhase::WaitingPromotion => {
                (ConditionStatus::Unknown, "Waiting for approval.".to_owned())
            }
            CanaryPhase::Progressing => (
                ConditionStatus::Unknown,
                "New revision detected, progressing canary analysis.".to_owned(),
            ),
            CanaryPhase::Promoting => (
                ConditionStatus::Unknown,
                "Canary analysis completed, starting primary rolling update.".to_owned(),
            ),
            CanaryPhase::Finalising => (
                ConditionStatus::Unknown,
                "Canary analysis completed, routing all traffic to primary.".to_owned(),
            ),
            CanaryPhase::Succeeded => (
                ConditionStatus::True,
                "Canary analysis completed successfully, promotion finished.".to_owned(),
            ),
            CanaryPhase::Failed => (
                ConditionStatus::False,
                format!("Canary analysis failed, {target_kind} scaled to zero."),
            ),
            CanaryPhase::Unset
            | CanaryPhase::Initializing
            | CanaryPhase::Terminating
            | CanaryPhase::Terminated => (
                ConditionStatus::Unknown,
                format!("New {target_kind} detected, starting initialization."),
            ),
        };
        Self {
            type_: PROMOTED_CONDITION.to_owned(),
            status,
            last_update_time: Some(now.clone()),
            last_transition_time: Some(now.clone()),
            reason: phase.as_str().to_owned(),
            message: Some(message),
        }
    }
}

/// A condition of a MetricTemplate or AlertProvider. Declared for compatibility; Flagger never writes
/// one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceCondition {
    /// Type of the condition.
    #[serde(rename = "type")]
    pub type_: String,

    /// Whether the condition holds.
    pub status: ConditionStatus,

    /// When the condition was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::date_time")]
    pub last_update_time: Option<Time>,

    /// When the status of the condition last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::date_time")]
    pub last_transition_time: Option<Time>,

    /// Machine-readable reason for the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// Human-readable explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).expect("timestamp"))
    }

    #[test]
    fn phases_serialise_to_flaggers_strings() {
        let names: Vec<String> = CanaryPhase::ALL
            .iter()
            .map(|p| serde_json::to_value(p).expect("json").to_string())
            .collect();
        assert_eq!(
            names.join(" "),
            r#""" "Initializing" "Initialized" "Waiting" "Progressing" "WaitingPromotion" "Promoting" "Finalising" "Succeeded" "Failed" "Terminating" "Terminated""#
        );
        for phase in CanaryPhase::ALL {
            assert_eq!(serde_json::to_value(phase).expect("json"), phase.as_str());
            assert_eq!(phase.to_string(), phase.as_str());
        }
    }

    #[test]
    fn promoted_condition_per_phase() {
        let now = at(1000);
        let cases = [
            (
                CanaryPhase::Initializing,
                ConditionStatus::Unknown,
                "New Deployment detected, starting initialization.",
            ),
            (
                CanaryPhase::Initialized,
                ConditionStatus::True,
                "Deployment initialization completed.",
            ),
            (
                CanaryPhase::Waiting,
                ConditionStatus::Unknown,
                "Waiting for approval.",
            ),
            (
                CanaryPhase::WaitingPromotion,
                ConditionStatus::Unknown,
                "Waiting for approval.",
            ),
            (
                CanaryPhase::Progressing,
                ConditionStatus::Unknown,
                "New revision detected, progressing canary analysis.",
            ),
            (
                CanaryPhase::Promoting,
                ConditionStatus::Unknown,
                "Canary analysis completed, starting primary rolling update.",
            ),
            (
                CanaryPhase::Finalising,
                ConditionStatus::Unknown,
                "Canary analysis completed, routing all traffic to primary.",
            ),
            (
                CanaryPhase::Succeeded,
                ConditionStatus::True,
                "Canary analysis completed successfully, promotion finished.",
            ),
            (
                CanaryPhase::Failed,
                ConditionStatus::False,
                "Canary analysis failed, Deployment scaled to zero.",
            ),
            (
                CanaryPhase::Terminating,
                ConditionStatus::Unknown,
                "New Deployment detected, starting initialization.",
            ),
        ];
        for (phase, status, message) in cases {
            let c = CanaryCondition::promoted(phase, "Deployment", &now);
            assert_eq!(
                (c.type_.as_str(), c.status, c.message.as_deref()),
                ("Promoted", status, Some(message))
            );
            assert_eq!(c.reason, phase.as_str());
            assert_eq!(
                (c.last_update_time.as_ref(), c.last_transition_time.as_ref()),
                (Some(&now), Some(&now))
            );
        }
    }

    #[test]
    fn conditions_change_only_with_status_or_reason_and_keep_the_transition_time_of_an_equal_status() {
        let mut status = CanaryStatus::default();
        let first = status
            .conditions_for_phase(CanaryPhase::Progressing, "Deployment", &at(1))
            .expect("new");
        assert_eq!(first.len(), 1);
        status.conditions = Some(first);

        // Same status and reason: nothing to write.
        assert_eq!(
            status.conditions_for_phase(CanaryPhase::Progressing, "Deployment", &at(2)),
            None
        );

        // Same status (Unknown), new reason: the transition time stays.
        let promoting = status
            .conditions_for_phase(CanaryPhase::Promoting, "Deployment", &at(3))
            .expect("new");
        assert_eq!(promoting[0].reason, "Promoting");
        assert_eq!(promoting[0].last_transition_time, Some(at(1)));
        assert_eq!(promoting[0].last_update_time, Some(at(3)));
        status.conditions = Some(promoting);

        // New status: the transition time moves.
        let succeeded = status
            .conditions_for_phase(CanaryPhase::Succeeded, "Deployment", &at(4))
            .expect("new");
        assert_eq!(succeeded[0].status, ConditionStatus::True);
        assert_eq!(succeeded[0].last_transition_time, Some(at(4)));
    }

    #[test]
    fn status_accessors_default_to_zero_and_unset() {
        let s = CanaryStatus::default();
        assert_eq!(
            (s.phase(), s.failed_checks(), s.canary_weight(), s.iterations()),
            (CanaryPhase::Unset, 0, 0, 0)
        );
        assert_eq!(serde_json::to_string(&s).expect("json"), "{}");
    }
}
