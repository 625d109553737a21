//! Is a workload rolled out and available? Flagger 1.44's readiness rules for Deployments and DaemonSets,
//! as pure functions of the workload's status, the Canary's thresholds and the current time.
//!
//! A workload that is not ready is either still progressing (`retriable`: look again next tick) or stuck
//! past its progress deadline (not retriable: the analysis rolls back, or a promotion fails).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, DeploymentCondition};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Whether a workload may receive traffic now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady {
        /// Flagger's message, without the `<name>.<ns> not ready:` prefix the caller adds.
        message: String,
        /// True while waiting may still help; false once the progress deadline has passed.
        retriable: bool,
    },
}

impl Readiness {
    fn waiting(retriable: bool, message: String) -> Self {
        Self::NotReady { message, retriable }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready)
    }
}

/// The number of replicas that must be available out of `of`, computed in 32-bit floats and truncated, as
/// Flagger does (so `3 × 90%` is 2, not 3).
fn threshold_of(of: i32, ready_threshold: i32) -> i32 {
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let n = (of as f32 * (ready_threshold as f32 / 100.0)) as i32;
    n
}

fn condition<'a>(d: &'a Deployment, type_: &str) -> Option<&'a DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))
}

/// Readiness of a Deployment (the primary with `primaryReadyThreshold`, the canary with
/// `canaryReadyThreshold`), with Flagger's messages.
///
/// One deliberate difference: a Deployment scaled to zero replicas is **not** ready (retriable). Flagger
/// means to check this for the primary but compares pointers, so a primary at zero replicas counts as
/// ready and receives all traffic.
pub fn deployment(
    d: &Deployment,
    progress_deadline_seconds: i32,
    ready_threshold: i32,
    now: Timestamp,
) -> Readiness {
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.clone().unwrap_or_default();
    if generation > status.observed_generation.unwrap_or(0) {
        return Readiness::waiting(
            true,
            "waiting for rollout to finish: observed deployment generation less than desired generation"
                .into(),
        );
    }
    let progress = condition(d, "Progressing");
    let mut retriable = true;
    if progress.is_some()
        && let Some(available) = condition(d, "Available")
        && available.status.as_deref() == Some("False")
        && available.reason.as_deref() == Some("MinimumReplicasUnavailable")
        && let Some(since) = &available.last_update_time
    {
        let deadline = since.0 + SignedDuration::from_secs(i64::from(progress_deadline_seconds));
        retriable = deadline >= now;
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let wanted = d.spec.replicas;
    let needed = threshold_of(updated, ready_threshold);
    if progress.is_some_and(|p| p.reason.as_deref() == Some("ProgressDeadlineExceeded")) {
        let name = d.metadata.name.as_deref().unwrap_or_default();
        return Readiness::waiting(
            false,
            format!("deployment {name:?} exceeded its progress deadline"),
        );
    }
    if let Some(wanted) = wanted
        && updated < wanted
    {
        return Readiness::waiting(
            retriable,
            format!(
                "waiting for rollout to finish: {updated} out of {wanted} new replicas have been updated"
            ),
        );
    }
    let replicas = status.replicas.unwrap_or(0);
    if replicas > updated {
        return Readiness::waiting(
            retriable,
            format!(
                "waiting for rollout to finish: {} old replicas are pending termination",
                replicas - updated
            ),
        );
    }
    let available = status.available_replicas.unwrap_or(0);
    if available < needed {
        return Readiness::waiting(
            retriable,
            format!(
                "waiting for rollout to finish: {available} of {needed} (readyThreshold {ready_threshold}%) \
                 updated replicas are available"
            ),
        );
    }
    if wanted == Some(0) {
        return Readiness::waiting(true, "deployment is scaled to zero replicas".into());
    }
    Readiness::Ready
}

/// Readiness of a DaemonSet. Flagger measures its deadline from the Canary's `status.lastTransitionTime`
/// (`canary_last_transition`), not from the DaemonSet.
pub fn daemonset(
    ds: &DaemonSet,
    progress_deadline_seconds: i32,
    ready_threshold: i32,
    canary_last_transition: Option<Timestamp>,
    now: Timestamp,
) -> Readiness {
    let status = ds.status.clone().unwrap_or_default();
    if ds.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return Readiness::waiting(
            true,
            "waiting for rollout to finish: observed daemonset generation less than desired generation"
                .into(),
        );
    }
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let desired = status.desired_number_scheduled;
    let needed = threshold_of(desired, ready_threshold);
    let not_updated = updated < desired;
    let not_available = status.number_available.unwrap_or(0) < needed;
    if !not_updated && !not_available {
        return Readiness::Ready;
    }
    // Flagger reads a missing lastTransitionTime as the zero time, long past any deadline.
    let since = canary_last_transition.unwrap_or(Timestamp::UNIX_EPOCH);
    if since + SignedDuration::from_secs(i64::from(progress_deadline_seconds)) < now {
        return Readiness::waiting(
            false,
            format!("exceeded its progressDeadlineSeconds: {progress_deadline_seconds}"),
        );
    }
    if not_updated {
        return Readiness::waiting(
            true,
            format!("waiting for rollout to finish: {updated} out of {desired} new pods have been updated"),
        );
    }
    Readiness::waiting(
        true,
        format!(
            "waiting for rollout to finish: {} of {needed} (readyThreshold {ready_threshold}%) updated pods are \
             available",
            status.number_available.unwrap_or(0)
        ),
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DaemonSetStatus, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn dep(replicas: i32, status: DeploymentStatus) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("podinfo".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: DeploymentSpec {
                replicas: Some(replicas),
                ..Default::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: Some(2),
                ..status
            }),
        }
    }

    fn counts(replicas: i32, updated: i32, available: i32) -> DeploymentStatus {
        DeploymentStatus {
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ..Default::default()
        }
    }

    fn cond(type_: &str, status: &str, reason: &str, updated_at: i64) -> DeploymentCondition {
        DeploymentCondition {
            type_: Some(type_.into()),
            status: Some(status.into()),
            reason: Some(reason.into()),
            last_update_time: Some(Time(ts(updated_at))),
            ..Default::default()
        }
    }

    fn not_ready(message: &str, retriable: bool) -> Readiness {
        Readiness::NotReady {
            message: message.into(),
            retriable,
        }
    }

    #[test]
    fn a_rolled_out_deployment_is_ready() {
        assert_eq!(
            deployment(&dep(3, counts(3, 3, 3)), 600, 100, ts(1000)),
            Readiness::Ready
        );
    }

    #[test]
    fn an_unobserved_generation_waits() {
        let mut d = dep(3, counts(3, 3, 3));
        d.metadata.generation = Some(3);
        assert_eq!(
            deployment(&d, 600, 100, ts(0)),
            not_ready(
                "waiting for rollout to finish: observed deployment generation less than desired generation",
                true
            )
        );
    }

    #[test]
    fn rollout_progress_messages_match_flagger() {
        assert_eq!(
            deployment(&dep(3, counts(3, 1, 3)), 600, 100, ts(0)),
            not_ready(
                "waiting for rollout to finish: 1 out of 3 new replicas have been updated",
                true
            )
        );
        assert_eq!(
            deployment(&dep(3, counts(5, 3, 3)), 600, 100, ts(0)),
            not_ready(
                "waiting for rollout to finish: 2 old replicas are pending termination",
                true
            )
        );
        assert_eq!(
            deployment(&dep(3, counts(3, 3, 1)), 600, 100, ts(0)),
            not_ready(
                "waiting for rollout to finish: 1 of 3 (readyThreshold 100%) updated replicas are available",
                true
            )
        );
    }

    #[test]
    fn the_ready_threshold_truncates_like_flagger() {
        // 3 × 90% = 2.7, truncated to 2: two available replicas are enough.
        assert_eq!(
            deployment(&dep(3, counts(3, 3, 2)), 600, 90, ts(0)),
            Readiness::Ready
        );
        assert!(!deployment(&dep(3, counts(3, 3, 1)), 600, 90, ts(0)).is_ready());
    }

    #[test]
    fn minimum_replicas_unavailable_past_the_deadline_is_not_retriable() {
        let mut status = counts(3, 3, 1);
        status.conditions = Some(vec![
            cond("Progressing", "True", "NewReplicaSetAvailable", 0),
            cond("Available", "False", "MinimumReplicasUnavailable", 100),
        ]);
        let d = dep(3, status);
        let msg =
            "waiting for rollout to finish: 1 of 3 (readyThreshold 100%) updated replicas are available";
        assert_eq!(
            deployment(&d, 60, 100, ts(160)),
            not_ready(msg, true),
            "deadline not passed yet"
        );
        assert_eq!(deployment(&d, 60, 100, ts(161)), not_ready(msg, false));
    }

    #[test]
    fn progress_deadline_exceeded_is_not_retriable() {
        let mut status = counts(3, 3, 3);
        status.conditions = Some(vec![cond("Progressing", "False", "ProgressDeadlineExceeded", 0)]);
        assert_eq!(
            deployment(&dep(3, status), 600, 100, ts(0)),
            not_ready("deployment \"podinfo\" exceeded its progress deadline", false)
        );
    }

    #[test]
    fn a_deployment_scaled_to_zero_is_not_ready() {
        assert_eq!(
            deployment(&dep(0, counts(0, 0, 0)), 600, 100, ts(0)),
            not_ready("deployment is scaled to zero replicas", true)
        );
    }

    fn ds(desired: i32, updated: i32, available: i32) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                generation: Some(1),
                ..Default::default()
            },
            spec: Default::default(),
            status: Some(DaemonSetStatus {
                observed_generation: Some(1),
                desired_number_scheduled: desired,
                updated_number_scheduled: Some(updated),
                number_available: Some(available),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn daemonset_readiness_and_deadline_from_the_canary() {
        assert_eq!(
            daemonset(&ds(3, 3, 3), 600, 100, Some(ts(0)), ts(10)),
            Readiness::Ready
        );
        assert_eq!(
            daemonset(&ds(3, 1, 3), 600, 100, Some(ts(0)), ts(10)),
            not_ready(
                "waiting for rollout to finish: 1 out of 3 new pods have been updated",
                true
            )
        );
        assert_eq!(
            daemonset(&ds(3, 3, 2), 600, 100, Some(ts(0)), ts(10)),
            not_ready(
                "waiting for rollout to finish: 2 of 3 (readyThreshold 100%) updated pods are available",
                true
            )
        );
        assert_eq!(
            daemonset(&ds(3, 1, 3), 600, 100, Some(ts(0)), ts(601)),
            not_ready("exceeded its progressDeadlineSeconds: 600", false)
        );
    }
}
