//! The alert model: what is said about a canary, how severe it is, and the fields shown with it
//! (Flagger's `events.go alert()` and `alertMetadata()`).

use std::fmt;

use flagger_api::{Canary, DeploymentStrategy};

/// Severity of a message (Flagger's `info`, `warn`, `error`). Subscribers filter on it (see
/// [`crate::routing::subscriber_accepts`]); notifiers use it only to pick a colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// Progress: initialisation, new revision, promotion finished.
    Info,
    /// Waiting for approval, manual rollback.
    Warn,
    /// Rollbacks and failures.
    Error,
}

impl Severity {
    /// The value as Flagger writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A named value shown with the message (a Slack attachment field, a Teams fact, a Google Chat section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Title of the field, e.g. `Target`.
    pub name: String,
    /// Its value, e.g. `Deployment/podinfo.test`.
    pub value: String,
}

impl Field {
    /// A field.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// One message about one canary, ready to be posted by any notifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// Name of the Canary (Flagger's "workload" in payloads is the canary name, not the target's).
    pub canary_name: String,
    /// Namespace of the Canary.
    pub canary_namespace: String,
    /// The text, e.g. `New revision detected, progressing canary analysis.`.
    pub message: String,
    /// How severe it is.
    pub severity: Severity,
    /// Fields in display order: `Cluster` first when set, then the metadata fields.
    pub fields: Vec<Field>,
}

impl Alert {
    /// An alert without fields.
    pub fn new(
        canary_name: impl Into<String>,
        canary_namespace: impl Into<String>,
        message: impl Into<String>,
        severity: Severity,
    ) -> Self {
        Self {
            canary_name: canary_name.into(),
            canary_namespace: canary_namespace.into(),
            message: message.into(),
            severity,
            fields: Vec::new(),
        }
    }

    /// The alert Flagger sends for `event` about `canary`: the `Cluster` field when `cluster_name`
    /// (`-cluster-name`) is not empty, then the metadata fields for the events that carry them.
    pub fn for_event(canary: &Canary, event: &AlertEvent, cluster_name: &str) -> Self {
        let mut alert = Self::new(
            canary.metadata.name.as_deref().unwrap_or_default(),
            canary.metadata.namespace.as_deref().unwrap_or_default(),
            event.message(&canary.spec.target_ref.kind),
            event.severity(),
        );
        if !cluster_name.is_empty() {
            alert.fields.push(Field::new("Cluster", cluster_name));
        }
        if event.has_metadata() {
            alert.fields.extend(metadata_fields(canary));
        }
        alert
    }

    /// `<canary name>.<namespace>`: the author, subtitle or summary line of every payload.
    pub fn subject(&self) -> String {
        format!("{}.{}", self.canary_name, self.canary_namespace)
    }
}

/// The metadata fields of a canary, as in Flagger's `alertMetadata`:
/// `Target: <Kind>/<name>.<namespace>`, `Failed checks threshold: <n>`, `Progress deadline: <n>s`, and
/// `Traffic routing` (`A/B Testing`, `Blue/Green`, `Weight step: <s> max: <m>` or
/// `Weight steps: <a,b,c> max: <m>`; none for a canary strategy with neither `stepWeight` nor
/// `stepWeights`). As in Flagger, `max` is the `maxWeight` field as written (0 when unset).
pub fn metadata_fields(canary: &Canary) -> Vec<Field> {
    let target = &canary.spec.target_ref;
    let mut fields = vec![
        Field::new(
            "Target",
            format!(
                "{}/{}.{}",
                target.kind,
                target.name,
                canary.metadata.namespace.as_deref().unwrap_or_default()
            ),
        ),
        Field::new("Failed checks threshold", canary.analysis_threshold().to_string()),
        Field::new(
            "Progress deadline",
            format!("{}s", canary.progress_deadline_seconds()),
        ),
    ];
    let routing = match canary.strategy() {
        DeploymentStrategy::AbTesting => Some("A/B Testing".to_owned()),
        DeploymentStrategy::BlueGreen => Some("Blue/Green".to_owned()),
        DeploymentStrategy::Canary => canary.analysis().and_then(|analysis| {
            let max = analysis.max_weight.unwrap_or(0);
            let step = analysis.step_weight.unwrap_or(0);
            let steps = analysis.step_weights.as_deref().unwrap_or_default();
            if step > 0 {
                Some(format!("Weight step: {step} max: {max}"))
            } else if !steps.is_empty() {
                let steps = steps.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
                Some(format!("Weight steps: {steps} max: {max}"))
            } else {
                None
            }
        }),
    };
    if let Some(routing) = routing {
        fields.push(Field::new("Traffic routing", routing));
    }
    fields
}

/// The alert catalogue: every alert Flagger sends, with its text, severity and whether it carries the
/// metadata fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertEvent {
    /// `New <Kind> detected, initialization completed.` (info, metadata).
    Initialized,
    /// `New revision detected, progressing canary analysis.` (info, metadata).
    NewRevision,
    /// `Canary is waiting for approval.` (warn): a confirm-rollout gate is closed.
    WaitingForApproval,
    /// `Canary promotion is waiting for approval.` (warn): a confirm-promotion gate is closed.
    PromotionWaitingForApproval,
    /// `Canary traffic increase is waiting for approval.` (warn): a confirm-traffic-increase gate is
    /// closed.
    TrafficIncreaseWaitingForApproval,
    /// `Rolling back manual webhook invoked` (warn): a rollback webhook asked for a rollback.
    ManualRollback,
    /// `Failed checks threshold reached <n>` (error).
    FailedChecksThreshold {
        /// The failed checks counted.
        failed_checks: i32,
    },
    /// `Promotion failed, primary not ready: <error>` (error).
    PromotionFailed {
        /// Why the primary is not ready.
        error: String,
    },
    /// `Canary analysis completed successfully, promotion finished.` (info).
    Succeeded,
    /// `Canary analysis was skipped, promotion finished.` (info).
    Skipped,
    /// `Progress deadline exceeded <error>` (error). Flagger never reaches this alert; flagger-rs sends it.
    ProgressDeadlineExceeded {
        /// The readiness error.
        error: String,
    },
}

impl AlertEvent {
    /// The message text; `target_kind` is the target's kind (`Deployment`, `DaemonSet`, `Service`).
    pub fn message(&self, target_kind: &str) -> String {
        match self {
            Self::Initialized => format!("New {target_kind} detected, initialization completed."),
            Self::NewRevision => "New revision detected, progressing canary analysis.".to_owned(),
            Self::WaitingForApproval => "Canary is waiting for approval.".to_owned(),
            Self::PromotionWaitingForApproval => "Canary promotion is waiting for approval.".to_owned(),
            Self::TrafficIncreaseWaitingForApproval => {
                "Canary traffic increase is waiting for approval.".to_owned()
            }
            Self::ManualRollback => "Rolling back manual webhook invoked".to_owned(),
            Self::FailedChecksThreshold { failed_checks } => {
                format!("Failed checks threshold reached {failed_checks}")
            }
            Self::PromotionFailed { error } => {
                format!("Promotion failed, primary not ready: {error}")
            }
            Self::Succeeded => "Canary analysis completed successfully, promotion finished.".to_owned(),
            Self::Skipped => "Canary analysis was skipped, promotion finished.".to_owned(),
            Self::ProgressDeadlineExceeded { error } => {
                format!("Progress deadline exceeded {error}")
            }
        }
    }

    /// The severity Flagger gives this alert.
    pub fn severity(&self) -> Severity {
        match self {
            Self::Initialized | Self::NewRevision | Self::Succeeded | Self::Skipped => Severity::Info,
            Self::WaitingForApproval
            | Self::PromotionWaitingForApproval
            | Self::TrafficIncreaseWaitingForApproval
            | Self::ManualRollback => Severity::Warn,
            Self::FailedChecksThreshold { .. }
            | Self::PromotionFailed { .. }
            | Self::ProgressDeadlineExceeded { .. } => Severity::Error,
        }
    }

    /// Whether the alert carries the metadata fields (initialisation and new revision only).
    pub fn has_metadata(&self) -> bool {
        matches!(self, Self::Initialized | Self::NewRevision)
    }
}
