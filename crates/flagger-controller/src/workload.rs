//! The targets a canary can have — Deployments, DaemonSets and (non-Knative) Services — behind one type, so
//! observe, act and the finalizer treat them alike where Flagger does and differently where it does not:
//!
//! | | Deployment | DaemonSet | Service |
//! |---|---|---|---|
//! | primary | `<t>-primary` Deployment | `<t>-primary` DaemonSet | `<t>-primary` copy of the Service (and a `<t>-canary` copy) |
//! | revision | hash of the pod template | the same, without the scale-to-zero nodeSelector | hash of `.spec` |
//! | readiness deadline | the Deployment's own conditions | the Canary's `lastTransitionTime` (Flagger's rule) | always ready |
//! | scale to zero | `spec.replicas: 0` | nodeSelector `flagger.app/scale-to-zero: "true"` | nothing |
//! | scale from zero | `spec.replicas` | the nodeSelector removed | nothing |
//!
//! A Service target gets no generated apex/canary/primary Services from the kubernetes router (Flagger's
//! no-op router for Service targets): the copies are the canary and the primary.

use std::collections::BTreeSet;
use std::sync::Arc;

use flagger_api::Canary;
use flagger_core::config::ConfigRef;
use flagger_core::hash::{self, HashError, SCALE_TO_ZERO_NODE_SELECTOR};
use flagger_core::machine::Readiness;
use flagger_core::primary::{self, FLAGGER_ID, PRIMARY_SUFFIX, PodWorkload, PrimaryError, WorkloadOptions};
use flagger_core::readiness;
use flagger_k8s::ActError;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::cache::Caches;
use crate::knative::{self, KnativeRevision};

/// A Deployment or a DaemonSet.
#[derive(Clone, Debug)]
pub enum Workload {
    /// A Deployment.
    Deployment(Arc<Deployment>),
    /// A DaemonSet.
    DaemonSet(Arc<DaemonSet>),
    /// A (core v1, non-Knative) Service.
    Service(Arc<Service>),
    /// A revision of a Knative Service: as target its latest revision, as primary the annotated one.
    Knative(Arc<KnativeRevision>),
}

/// Whether flagger-rs can target `kind` of `api_version` (a core Service or a Knative Service).
pub fn is_target_kind(api_version: &str, kind: &str) -> bool {
    match kind {
        "Deployment" | "DaemonSet" => true,
        "Service" => api_version == "v1" || api_version.starts_with("serving.knative.dev"),
        _ => false,
    }
}

/// The target of `kind`/`name` in `namespace`, from the caches.
pub fn lookup(caches: &Caches, kind: &str, namespace: &str, name: &str) -> Option<Workload> {
    match kind {
        "Deployment" => caches.deployment(namespace, name).map(Workload::Deployment),
        "DaemonSet" => caches.daemonset(namespace, name).map(Workload::DaemonSet),
        "Service" => caches.service(namespace, name).map(Workload::Service),
        _ => None,
    }
}

impl Workload {
    /// `Deployment` or `DaemonSet`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Deployment(_) => "Deployment",
            Self::DaemonSet(_) => "DaemonSet",
            Self::Service(_) | Self::Knative(_) => "Service",
        }
    }

    /// Its name.
    pub fn name(&self) -> String {
        match self {
            Self::Deployment(d) => d.name_any(),
            Self::DaemonSet(d) => d.name_any(),
            Self::Service(s) => s.name_any(),
            Self::Knative(k) => k.service.name_any(),
        }
    }

    /// Its pod template (`None` for a Service).
    pub fn template(&self) -> Option<&PodTemplateSpec> {
        match self {
            Self::Deployment(d) => Some(d.template()),
            Self::DaemonSet(d) => Some(d.template()),
            Self::Service(_) | Self::Knative(_) => None,
        }
    }

    /// The selector label and the target's value for it (`None` for a Service target, which gets no
    /// generated Services).
    pub fn selector_label(&self, opts: &WorkloadOptions) -> Result<Option<(String, String)>, PrimaryError> {
        match self {
            Self::Deployment(d) => primary::selector_label(d.as_ref(), opts).map(Some),
            Self::DaemonSet(d) => primary::selector_label(d.as_ref(), opts).map(Some),
            Self::Service(_) | Self::Knative(_) => Ok(None),
        }
    }

    /// The revision hash: of the pod template, or of a Service's `.spec`.
    pub fn revision(&self) -> Result<String, HashError> {
        match self {
            Self::Deployment(d) => hash::spec_hash(&d.spec.template),
            Self::DaemonSet(d) => hash::daemonset_template_hash(&d.spec.template),
            Self::Service(s) => hash::spec_hash(&s.spec),
            // Flagger's revision of a Knative target is the latest revision's name.
            Self::Knative(k) => hash::spec_hash(&k.revision),
        }
    }

    /// Whether the workload is scaled to zero.
    pub fn scaled_to_zero(&self) -> bool {
        match self {
            Self::Deployment(d) => d.spec.replicas == Some(0),
            Self::DaemonSet(d) => node_selector_has_scale_to_zero(d),
            Self::Service(_) | Self::Knative(_) => false,
        }
    }

    /// `spec.replicas` of a Deployment; `None` otherwise.
    pub fn replicas(&self) -> Option<i32> {
        match self {
            Self::Deployment(d) => d.spec.replicas,
            Self::DaemonSet(_) | Self::Service(_) | Self::Knative(_) => None,
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
            Self::Service(_) => Readiness::Ready,
            Self::Knative(k) => k.ready.clone(),
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
            (Self::Service(p), Self::Service(t)) => Ok(copy_spec(t) == copy_spec(p)),
            (Self::Knative(p), Self::Knative(t)) => Ok(p.revision == t.revision),
            _ => Ok(false),
        }
    }

    /// The `flagger-id` pod annotation.
    pub fn flagger_id(&self) -> Option<String> {
        self.template()?
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
    /// The primary copy of a Service target.
    Service(Service),
    /// A Knative target's primary: the annotation naming the target's latest revision (and, at
    /// initialization, all traffic to it).
    Knative {
        /// The target's latest revision.
        target: Arc<KnativeRevision>,
        /// Whether to also write the initial all-to-primary traffic.
        initial_traffic: bool,
    },
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
            Self::Service(s) => DesiredPrimary::Service(service_copy(s, PRIMARY_SUFFIX, owner, opts)),
            Self::Knative(k) => DesiredPrimary::Knative {
                target: k.clone(),
                initial_traffic: false,
            },
        })
    }

    /// The `<target>-canary` copy of a Service target (`None` for other kinds).
    pub fn desired_canary_copy(&self, owner: OwnerReference, opts: &WorkloadOptions) -> Option<Service> {
        match self {
            Self::Service(s) => Some(service_copy(s, CANARY_SUFFIX, owner, opts)),
            _ => None,
        }
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
            // A Service target has nothing to scale.
            Self::Service(_) | Self::Knative(_) => Ok(()),
        }
    }
}

impl DesiredPrimary {
    /// Server-side applies it with the primary's field manager.
    pub async fn apply(&self, client: &kube::Client) -> Result<(), ActError> {
        match self {
            Self::Deployment(d) => flagger_k8s::apply_primary_object(client, d).await.map(drop),
            Self::DaemonSet(d) => flagger_k8s::apply_primary_object(client, d).await.map(drop),
            Self::Service(s) => flagger_k8s::apply_primary_object(client, s).await.map(drop),
            Self::Knative {
                target,
                initial_traffic,
            } => knative::set_primary(client, &target.service, &target.revision, *initial_traffic)
                .await
                .map_err(|source| ActError {
                    action: "update",
                    kind: "Service",
                    namespace: target.service.namespace().unwrap_or_default(),
                    name: target.service.name_any(),
                    source,
                }),
        }
    }
}

/// The suffix of a Service target's canary copy.
pub const CANARY_SUFFIX: &str = "-canary";

/// The annotation `kubectl apply` keeps the last applied manifest in; not copied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The spec of a copy of `service`: everything but the addresses and ports the API server assigns to each
/// Service (cluster IPs, node ports, the health-check node port), which a copy must not claim.
fn copy_spec(service: &Service) -> Option<ServiceSpec> {
    let mut spec = service.spec.clone()?;
    spec.cluster_ip = None;
    spec.cluster_ips = None;
    spec.health_check_node_port = None;
    for port in spec.ports.iter_mut().flatten() {
        port.node_port = None;
    }
    Some(spec)
}

/// `<service><suffix>`: a copy of the target Service (Flagger's Service target), owned by the Canary, with
/// the target's labels filtered by `-include-label-prefix` and its annotations without kubectl's
/// last-applied manifest.
fn service_copy(service: &Service, suffix: &str, owner: OwnerReference, opts: &WorkloadOptions) -> Service {
    let annotations = service
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != LAST_APPLIED && !k.contains(primary::TOOLKIT_MARKER))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Service {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(format!("{}{suffix}", service.name_any())),
            namespace: service.metadata.namespace.clone(),
            labels: Some(primary::include_by_prefix(
                service.metadata.labels.as_ref(),
                &opts.include_label_prefixes,
            )),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: copy_spec(service),
        status: None,
    }
}

impl DesiredPrimary {
    /// At initialization a Knative primary also gets all the traffic.
    pub fn with_initial_traffic(self) -> Self {
        match self {
            Self::Knative { target, .. } => Self::Knative {
                target,
                initial_traffic: true,
            },
            other => other,
        }
    }
}
