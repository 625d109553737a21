//! The workloads a canary can target with a pod template — Deployments and DaemonSets — behind one type,
//! so observe, act and the finalizer treat them alike where Flagger does and differently where it does not:
//!
//! | | Deployment | DaemonSet |
//! |---|---|---|
//! | revision | hash of the pod template | the same, without the scale-to-zero nodeSelector |
//! | readiness deadline | the Deployment's own conditions | the Canary's `lastTransitionTime` (Flagger's rule) |
//! | scale to zero | `spec.replicas: 0` | nodeSelector `flagger.app/scale-to-zero: "true"` |
//! | scale from zero | `spec.replicas` | the nodeSelector removed |

use std::collections::BTreeSet;
use std::sync::Arc;

use flagger_api::Canary;
use flagger_core::config::ConfigRef;
use flagger_core::hash::{self, HashError, SCALE_TO_ZERO_NODE_SELECTOR};
use flagger_core::machine::Readiness;
use flagger_core::primary::{self, FLAGGER_ID, PodWorkload, PrimaryError, WorkloadOptions};
use flagger_core::readiness;
use flagger_k8s::ActError;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::cache::Caches;

/// A Deployment or a DaemonSet.
#[derive(Clone, Debug)]
pub enum Workload {
    /// A Deployment.
    Deployment(Arc<Deployment>),
    /// A DaemonSet.
    DaemonSet(Arc<DaemonSet>),
}

/// Whether flagger-rs can target `kind` with a pod-template workload.
pub fn is_workload_kind(kind: &str) -> bool {
    matches!(kind, "Deployment" | "DaemonSet")
}

/// The workload `kind`/`name` in `namespace`, from the caches.
pub fn lookup(caches: &Caches, kind: &str, namespace: &str, name: &str) -> Option<Workload> {
    match kind {
        "Deployment" => caches.deployment(namespace, name).map(Workload::Deployment),
        "DaemonSet" => caches.daemonset(namespace, name).map(Workload::DaemonSet),
        _ => None,
    }
}

impl Workload {
    /// `Deployment` or `DaemonSet`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Deployment(_) => "Deployment",
            Self::DaemonSet(_) => "DaemonSet",
        }
    }

    /// Its name.
    pub fn name(&self) -> String {
        match self {
            Self::Deployment(d) => d.name_any(),
            Self::DaemonSet(d) => d.name_any(),
        }
    }

    /// Its pod template.
    pub fn template(&self) -> &PodTemplateSpec {
        match self {
            Self::Deployment(d) => d.template(),
            Self::DaemonSet(d) => d.template(),
        }
    }

    /// The selector label and the target's value for it.
    pub fn selector_label(&self, opts: &WorkloadOptions) -> Result<(String, String), PrimaryError> {
        match self {
            Self::Deployment(d) => primary::selector_label(d.as_ref(), opts),
            Self::DaemonSet(d) => primary::selector_label(d.as_ref(), opts),
        }
    }

    /// The revision hash of the pod template.
    pub fn revision(&self) -> Result<String, HashError> {
        match self {
            Self::Deployment(d) => hash::spec_hash(&d.spec.template),
            Self::DaemonSet(d) => hash::daemonset_template_hash(&d.spec.template),
        }
    }

    /// Whether the workload is scaled to zero.
    pub fn scaled_to_zero(&self) -> bool {
        match self {
            Self::Deployment(d) => d.spec.replicas == Some(0),
            Self::DaemonSet(d) => node_selector_has_scale_to_zero(d),
        }
    }

    /// `spec.replicas` of a Deployment; `None` for a DaemonSet.
    pub fn replicas(&self) -> Option<i32> {
        match self {
            Self::Deployment(d) => d.spec.replicas,
            Self::DaemonSet(_) => None,
        }
    }

    /// Flagger's readiness with `threshold` percent of the pods available.
    pub fn readiness(&self, canary: &Canary, threshold: i32, now: Timestamp) -> Readiness {
        let deadline = canary.progress_deadline_seconds();
        match self {
            Self::Deployment(d) => readiness::deployment(d, deadline, threshold, now),
            Self::DaemonSet(d) => {
                let last_transition = canary
                    .status
                    .as_ref()
                    .and_then(|s| s.last_transition_time.as_ref())
                    .map(|t| t.0);
                readiness::daemonset(d, deadline, threshold, last_transition, now)
            }
        }
    }

    /// Whether this primary runs the pod template `target` would give it (`flagger-id` ignored).
    pub fn runs(
        &self,
        target: &Workload,
        opts: &WorkloadOptions,
        tracked: &BTreeSet<ConfigRef>,
    ) -> Result<bool, PrimaryError> {
        match (self, target) {
            (Self::Deployment(p), Self::Deployment(t)) => {
                primary::runs_target(p.as_ref(), t.as_ref(), opts, tracked)
            }
            (Self::DaemonSet(p), Self::DaemonSet(t)) => {
                primary::runs_target(p.as_ref(), t.as_ref(), opts, tracked)
            }
            _ => Ok(false),
        }
    }

    /// The `flagger-id` pod annotation.
    pub fn flagger_id(&self) -> Option<String> {
        self.template()
            .metadata
            .as_ref()?
            .annotations
            .as_ref()?
            .get(FLAGGER_ID)
            .cloned()
    }
}

fn node_selector_has_scale_to_zero(ds: &DaemonSet) -> bool {
    ds.spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.node_selector.as_ref())
        .is_some_and(|n| n.contains_key(SCALE_TO_ZERO_NODE_SELECTOR))
}

/// What a target's primary should be.
#[derive(Clone, Debug)]
pub enum DesiredPrimary {
    /// A primary Deployment.
    Deployment(Deployment),
    /// A primary DaemonSet.
    DaemonSet(DaemonSet),
}

impl Workload {
    /// The primary this target gives (see [`primary::desired_primary`]); `replicas` only matters for a
    /// Deployment.
    pub fn desired_primary(
        &self,
        owner: OwnerReference,
        opts: &WorkloadOptions,
        tracked: &BTreeSet<ConfigRef>,
        replicas: Option<i32>,
        flagger_id: &str,
    ) -> Result<DesiredPrimary, PrimaryError> {
        Ok(match self {
            Self::Deployment(d) => DesiredPrimary::Deployment(primary::desired_primary(
                d, owner, opts, tracked, replicas, flagger_id,
            )?),
            Self::DaemonSet(d) => DesiredPrimary::DaemonSet(primary::desired_primary_daemonset(
                d, owner, opts, tracked, flagger_id,
            )?),
        })
    }

    /// Scales the target to zero (`replicas == 0`) or up: a Deployment to `replicas`, a DaemonSet by its
    /// scale-to-zero nodeSelector.
    pub async fn scale(&self, client: &kube::Client, replicas: i32) -> Result<(), ActError> {
        match self {
            Self::Deployment(d) => {
                flagger_k8s::scale_deployment(
                    client,
                    &d.namespace().unwrap_or_default(),
                    &d.name_any(),
                    replicas,
                )
                .await
            }
            Self::DaemonSet(d) => {
                flagger_k8s::scale_daemonset(
                    client,
                    &d.namespace().unwrap_or_default(),
                    &d.name_any(),
                    replicas == 0,
                )
                .await
            }
        }
    }
}

impl DesiredPrimary {
    /// Server-side applies it with the primary's field manager.
    pub async fn apply(&self, client: &kube::Client) -> Result<(), ActError> {
        match self {
            Self::Deployment(d) => flagger_k8s::apply_primary_object(client, d).await.map(drop),
            Self::DaemonSet(d) => flagger_k8s::apply_primary_object(client, d).await.map(drop),
        }
    }
}
