//! The `<target>-primary` Deployment or DaemonSet: what flagger-rs creates at initialization and writes at
//! promotion, computed from the target (Flagger 1.44 §2.8), as pure functions.
//!
//! The primary differs from its target in exactly these ways:
//! - its name is `<target>-primary`, and its selector is the single selector label with value
//!   `<value>-primary` (the other matchLabels of the target are dropped, as Flagger does);
//! - its pod template's selector label is `<value>-primary`, metadata keys containing `toolkit.fluxcd.io`
//!   are removed, and the pod annotation `flagger-id` forces a rolling update when a release is promoted;
//! - references to tracked ConfigMaps and Secrets point at their `-primary` copies;
//! - (Deployments) anti-affinity and topology-spread selectors that name the target under a selector label
//!   name the primary instead;
//! - (DaemonSets) the `flagger.app/scale-to-zero` nodeSelector of a target at zero is not copied.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

pub use crate::config::ConfigRef;
use crate::hash::SCALE_TO_ZERO_NODE_SELECTOR;

/// A target with a pod template that gets a primary copy: a Deployment or a DaemonSet.
pub trait PodWorkload {
    /// The kind as Flagger's messages name it: `deployment` or `daemonset`.
    const KIND: &'static str;
    /// The object's metadata.
    fn meta(&self) -> &ObjectMeta;
    /// `spec.selector.matchLabels`.
    fn match_labels(&self) -> Option<&BTreeMap<String, String>>;
    /// `spec.template`.
    fn template(&self) -> &PodTemplateSpec;
}

impl PodWorkload for Deployment {
    const KIND: &'static str = "deployment";
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn match_labels(&self) -> Option<&BTreeMap<String, String>> {
        self.spec.selector.match_labels.as_ref()
    }
    fn template(&self) -> &PodTemplateSpec {
        &self.spec.template
    }
}

impl PodWorkload for DaemonSet {
    const KIND: &'static str = "daemonset";
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn match_labels(&self) -> Option<&BTreeMap<String, String>> {
        self.spec.selector.match_labels.as_ref()
    }
    fn template(&self) -> &PodTemplateSpec {
        &self.spec.template
    }
}

/// The pod-template annotation whose value changes to force the primary to roll.
pub const FLAGGER_ID: &str = "flagger-id";
/// Metadata keys containing this marker belong to Flux and are never copied.
pub const TOOLKIT_MARKER: &str = "toolkit.fluxcd.io";
/// The suffix of every primary object's name and selector value.
pub const PRIMARY_SUFFIX: &str = "-primary";

/// The operator settings that shape primaries (`-selector-labels`, `-include-label-prefix`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadOptions {
    /// Selector label keys in order of preference (default `app`, `name`, `app.kubernetes.io/name`).
    pub selector_labels: Vec<String>,
    /// Prefixes of target labels and annotations copied to the primary's metadata; `*` copies all.
    pub include_label_prefixes: Vec<String>,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        Self {
            selector_labels: ["app", "name", "app.kubernetes.io/name"]
                .map(String::from)
                .to_vec(),
            include_label_prefixes: Vec::new(),
        }
    }
}

/// Why a primary cannot be built.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrimaryError {
    /// No selector label of `-selector-labels` is in the target's `matchLabels`.
    #[error("{kind} {name}.{namespace} spec.selector.matchLabels must contain one of {expected:?}")]
    NoSelectorLabel {
        /// `deployment` or `daemonset`.
        kind: &'static str,
        /// The target's name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// The labels looked for.
        expected: Vec<String>,
    },
    /// A DaemonSet target must roll out with RollingUpdate (a primary with OnDelete would never update).
    #[error("daemonset {name}.{namespace} must have RollingUpdate strategy but have {strategy}")]
    NotRollingUpdate {
        /// The target's name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// Its update strategy type.
        strategy: String,
    },
}

/// The selector label of a target: the first of `opts.selector_labels` in its `matchLabels`, with its value.
pub fn selector_label<W: PodWorkload>(
    target: &W,
    opts: &WorkloadOptions,
) -> Result<(String, String), PrimaryError> {
    let match_labels = target.match_labels();
    opts.selector_labels
        .iter()
        .find_map(|key| match_labels?.get(key).map(|value| (key.clone(), value.clone())))
        .ok_or_else(|| PrimaryError::NoSelectorLabel {
            kind: W::KIND,
            name: target.meta().name.clone().unwrap_or_default(),
            namespace: target.meta().namespace.clone().unwrap_or_default(),
            expected: opts.selector_labels.clone(),
        })
}

/// The entries of `map` whose key starts with one of `prefixes` (`*` matches all; an empty prefix none),
/// never Flux's toolkit keys.
pub fn include_by_prefix(
    map: Option<&BTreeMap<String, String>>,
    prefixes: &[String],
) -> BTreeMap<String, String> {
    map.into_iter()
        .flatten()
        .filter(|(k, _)| !k.contains(TOOLKIT_MARKER))
        .filter(|(k, _)| {
            prefixes
                .iter()
                .any(|p| p == "*" || (!p.is_empty() && k.starts_with(p.as_str())))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `map` without Flux's toolkit keys and without `key`, then `key: value`.
fn with_selector(map: Option<&BTreeMap<String, String>>, key: &str, value: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = map
        .into_iter()
        .flatten()
        .filter(|(k, _)| !k.contains(TOOLKIT_MARKER) && k.as_str() != key)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert(key.to_string(), value.to_string());
    out
}

/// The pod spec of the primary: tracked config references renamed to their `-primary` copies (volumes,
/// projected sources, env and envFrom of containers and init containers), and anti-affinity and
/// topology-spread selectors that name the target deployment under a selector label renamed to the primary.
pub fn primary_pod_spec<W: PodWorkload>(
    target: &W,
    tracked: &BTreeSet<ConfigRef>,
    opts: &WorkloadOptions,
) -> PodSpec {
    let mut spec = target.template().spec.clone().unwrap_or_default();
    rename_config_refs(&mut spec, tracked);
    if W::KIND == DaemonSet::KIND {
        // The target may be "scaled to zero" (a nodeSelector no node has); the primary must run.
        if let Some(selector) = spec.node_selector.as_mut() {
            selector.remove(SCALE_TO_ZERO_NODE_SELECTOR);
        }
        return spec;
    }
    let target_name = target.meta().name.as_deref().unwrap_or_default();
    let mut selectors: Vec<&mut LabelSelector> = Vec::new();
    for c in spec.topology_spread_constraints.iter_mut().flatten() {
        selectors.extend(c.label_selector.as_mut());
    }
    if let Some(anti) = spec.affinity.as_mut().and_then(|a| a.pod_anti_affinity.as_mut()) {
        for t in anti
            .preferred_during_scheduling_ignored_during_execution
            .iter_mut()
            .flatten()
        {
            selectors.extend(t.pod_affinity_term.label_selector.as_mut());
        }
        for t in anti
            .required_during_scheduling_ignored_during_execution
            .iter_mut()
            .flatten()
        {
            selectors.extend(t.label_selector.as_mut());
        }
    }
    for selector in selectors {
        point_selector_at_primary(selector, target_name, &opts.selector_labels);
    }
    spec
}

fn point_selector_at_primary(selector: &mut LabelSelector, target_name: &str, keys: &[String]) {
    for expr in selector.match_expressions.iter_mut().flatten() {
        if keys.contains(&expr.key)
            && let Some(value) = expr
                .values
                .iter_mut()
                .flatten()
                .find(|v| v.as_str() == target_name)
        {
            value.push_str(PRIMARY_SUFFIX);
        }
    }
    for (key, value) in selector.match_labels.iter_mut().flatten() {
        if keys.contains(key) && value == target_name {
            value.push_str(PRIMARY_SUFFIX);
        }
    }
}

fn rename(name: &mut String, tracked: &BTreeSet<ConfigRef>, as_ref: fn(String) -> ConfigRef) {
    if tracked.contains(&as_ref(name.clone())) {
        name.push_str(PRIMARY_SUFFIX);
    }
}

fn rename_config_refs(spec: &mut PodSpec, tracked: &BTreeSet<ConfigRef>) {
    for volume in spec.volumes.iter_mut().flatten() {
        if let Some(cm) = volume.config_map.as_mut() {
            rename(&mut cm.name, tracked, ConfigRef::ConfigMap);
        }
        if let Some(name) = volume.secret.as_mut().and_then(|s| s.secret_name.as_mut()) {
            rename(name, tracked, ConfigRef::Secret);
        }
        for source in volume
            .projected
            .as_mut()
            .and_then(|p| p.sources.as_mut())
            .into_iter()
            .flatten()
        {
            if let Some(cm) = source.config_map.as_mut() {
                rename(&mut cm.name, tracked, ConfigRef::ConfigMap);
            }
            if let Some(secret) = source.secret.as_mut() {
                rename(&mut secret.name, tracked, ConfigRef::Secret);
            }
        }
    }
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for container in containers {
        for env in container.env.iter_mut().flatten() {
            if let Some(from) = env.value_from.as_mut() {
                // Flagger renames a configMapKeyRef, or else a secretKeyRef.
                if let Some(cm) = from.config_map_key_ref.as_mut() {
                    rename(&mut cm.name, tracked, ConfigRef::ConfigMap);
                } else if let Some(secret) = from.secret_key_ref.as_mut() {
                    rename(&mut secret.name, tracked, ConfigRef::Secret);
                }
            }
        }
        for from in container.env_from.iter_mut().flatten() {
            if let Some(cm) = from.config_map_ref.as_mut() {
                rename(&mut cm.name, tracked, ConfigRef::ConfigMap);
            } else if let Some(secret) = from.secret_ref.as_mut() {
                rename(&mut secret.name, tracked, ConfigRef::Secret);
            }
        }
    }
}

/// The primary's pod template: the target's, with the selector label pointing at the primary, toolkit keys
/// removed and `flagger-id` set to `flagger_id`.
fn primary_template<W: PodWorkload>(
    target: &W,
    key: &str,
    primary_value: &str,
    tracked: &BTreeSet<ConfigRef>,
    opts: &WorkloadOptions,
    flagger_id: &str,
) -> PodTemplateSpec {
    let meta = target.template().metadata.clone().unwrap_or_default();
    let mut annotations: BTreeMap<String, String> = meta
        .annotations
        .into_iter()
        .flatten()
        .filter(|(k, _)| !k.contains(TOOLKIT_MARKER) && k != FLAGGER_ID)
        .collect();
    annotations.insert(FLAGGER_ID.to_string(), flagger_id.to_string());
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(with_selector(meta.labels.as_ref(), key, primary_value)),
            annotations: Some(annotations),
            ..Default::default()
        }),
        spec: Some(primary_pod_spec(target, tracked, opts)),
    }
}

/// The complete desired primary Deployment for `target`, owned (as controller) by `owner`, the Canary.
///
/// At creation `replicas` is the target's (or 1 when the target is at zero); at promotion pass the
/// primary's current replicas when an autoscaler manages them, so promotion does not fight it.
///
/// `flagger_id` is the pod annotation that forces a rolling update. Flagger draws a new one at every
/// promotion, which restarts the primary even when nothing changed; callers keep the current value unless
/// the promoted revision (template or tracked config) differs from the primary's.
///
/// Metadata labels and annotations are the target's that match `-include-label-prefix`, both at creation
/// and at promotion (Flagger copies all annotations at creation but filters them at promotion).
pub fn desired_primary(
    target: &Deployment,
    owner: OwnerReference,
    opts: &WorkloadOptions,
    tracked: &BTreeSet<ConfigRef>,
    replicas: Option<i32>,
    flagger_id: &str,
) -> Result<Deployment, PrimaryError> {
    let (key, value) = selector_label(target, opts)?;
    let primary_value = format!("{value}{PRIMARY_SUFFIX}");
    let spec = &target.spec;
    let replicas = replicas.unwrap_or_else(|| spec.replicas.filter(|r| *r > 0).unwrap_or(1));
    Ok(Deployment {
        metadata: primary_metadata(&target.metadata, &key, &primary_value, owner, opts),
        spec: DeploymentSpec {
            progress_deadline_seconds: spec.progress_deadline_seconds,
            min_ready_seconds: spec.min_ready_seconds,
            revision_history_limit: spec.revision_history_limit,
            replicas: Some(replicas),
            strategy: spec.strategy.clone(),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(key.clone(), primary_value.clone())])),
                ..Default::default()
            },
            template: primary_template(target, &key, &primary_value, tracked, opts, flagger_id),
            ..Default::default()
        },
        status: None,
    })
}

/// The metadata of a primary workload: `<target>-primary`, the target's labels and annotations filtered by
/// `includeLabelPrefix`, the primary selector label, and the Canary as owner.
fn primary_metadata(
    target: &ObjectMeta,
    key: &str,
    primary_value: &str,
    owner: OwnerReference,
    opts: &WorkloadOptions,
) -> ObjectMeta {
    let labels = include_by_prefix(target.labels.as_ref(), &opts.include_label_prefixes);
    ObjectMeta {
        name: Some(format!(
            "{}{PRIMARY_SUFFIX}",
            target.name.as_deref().unwrap_or_default()
        )),
        namespace: target.namespace.clone(),
        labels: Some(with_selector(Some(&labels), key, primary_value)),
        annotations: Some(include_by_prefix(
            target.annotations.as_ref(),
            &opts.include_label_prefixes,
        )),
        owner_references: Some(vec![owner]),
        ..Default::default()
    }
}

/// Whether `primary` runs the pod template that `target` would give it: the primary's template equals the
/// one [`desired_primary`] builds from the target, ignoring `flagger-id`. Used when taking over canaries
/// from Go Flagger, whose revision hashes cannot be compared.
pub fn runs_target<W: PodWorkload>(
    primary: &W,
    target: &W,
    opts: &WorkloadOptions,
    tracked: &BTreeSet<ConfigRef>,
) -> Result<bool, PrimaryError> {
    let (key, value) = selector_label(target, opts)?;
    let primary_value = format!("{value}{PRIMARY_SUFFIX}");
    let without_id = |mut t: PodTemplateSpec| {
        if let Some(annotations) = t.metadata.as_mut().and_then(|m| m.annotations.as_mut()) {
            annotations.remove(FLAGGER_ID);
        }
        t
    };
    let desired = without_id(primary_template(target, &key, &primary_value, tracked, opts, ""));
    Ok(desired == without_id(primary.template().clone()))
}

/// The complete desired primary DaemonSet for `target` (see [`desired_primary`] for the rules they
/// share). DaemonSets have no replicas; their update strategy must be RollingUpdate (or unset).
pub fn desired_primary_daemonset(
    target: &DaemonSet,
    owner: OwnerReference,
    opts: &WorkloadOptions,
    tracked: &BTreeSet<ConfigRef>,
    flagger_id: &str,
) -> Result<DaemonSet, PrimaryError> {
    check_rolling_update(target)?;
    let (key, value) = selector_label(target, opts)?;
    let primary_value = format!("{value}{PRIMARY_SUFFIX}");
    let spec = &target.spec;
    Ok(DaemonSet {
        metadata: primary_metadata(&target.metadata, &key, &primary_value, owner, opts),
        spec: DaemonSetSpec {
            min_ready_seconds: spec.min_ready_seconds,
            revision_history_limit: spec.revision_history_limit,
            update_strategy: spec.update_strategy.clone(),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(key.clone(), primary_value.clone())])),
                ..Default::default()
            },
            template: primary_template(target, &key, &primary_value, tracked, opts, flagger_id),
        },
        status: None,
    })
}

/// Flagger's DaemonSet rule: the update strategy is RollingUpdate or unset.
pub fn check_rolling_update(target: &DaemonSet) -> Result<(), PrimaryError> {
    match target
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
    {
        None | Some("") | Some("RollingUpdate") => Ok(()),
        Some(other) => Err(PrimaryError::NotRollingUpdate {
            name: target.metadata.name.clone().unwrap_or_default(),
            namespace: target.metadata.namespace.clone().unwrap_or_default(),
            strategy: other.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        Affinity, ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapProjection, ConfigMapVolumeSource,
        Container, EnvFromSource, EnvVar, EnvVarSource, PodAffinityTerm, PodAntiAffinity,
        ProjectedVolumeSource, SecretKeySelector, SecretVolumeSource, TopologySpreadConstraint, Volume,
        VolumeProjection, WeightedPodAffinityTerm,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;
    use crate::test_support::owner;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn target() -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("podinfo".into()),
                namespace: Some("test".into()),
                labels: Some(map(&[
                    ("app", "podinfo"),
                    ("app.kubernetes.io/part-of", "shop"),
                    ("team", "x"),
                ])),
                annotations: Some(map(&[
                    ("kustomize.toolkit.fluxcd.io/checksum", "abc"),
                    ("app.kubernetes.io/owner", "me"),
                    ("deployment.kubernetes.io/revision", "3"),
                ])),
                ..Default::default()
            },
            spec: DeploymentSpec {
                replicas: Some(3),
                progress_deadline_seconds: Some(120),
                selector: LabelSelector {
                    match_labels: Some(map(&[("app", "podinfo"), ("tier", "web")])),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(map(&[("app", "podinfo"), ("tier", "web")])),
                        annotations: Some(map(&[
                            ("prometheus.io/scrape", "true"),
                            ("helm.toolkit.fluxcd.io/x", "y"),
                            (FLAGGER_ID, "old"),
                        ])),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "podinfod".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            },
            status: None,
        }
    }

    #[test]
    fn the_primary_has_one_selector_label_with_the_primary_suffix() {
        let p = desired_primary(
            &target(),
            owner("podinfo"),
            &WorkloadOptions::default(),
            &BTreeSet::new(),
            None,
            "id-1",
        )
        .unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("podinfo-primary"));
        assert_eq!(
            p.spec.selector.match_labels,
            Some(map(&[("app", "podinfo-primary")]))
        );
        let tmeta = p.spec.template.metadata.unwrap();
        assert_eq!(
            tmeta.labels,
            Some(map(&[("app", "podinfo-primary"), ("tier", "web")]))
        );
        assert_eq!(
            tmeta.annotations,
            Some(map(&[("prometheus.io/scrape", "true"), (FLAGGER_ID, "id-1")]))
        );
        assert_eq!(p.spec.replicas, Some(3));
        assert_eq!(p.spec.progress_deadline_seconds, Some(120));
        assert_eq!(p.metadata.owner_references, Some(vec![owner("podinfo")]));
    }

    #[test]
    fn metadata_follows_include_label_prefix() {
        let none = desired_primary(
            &target(),
            owner("podinfo"),
            &WorkloadOptions::default(),
            &BTreeSet::new(),
            None,
            "i",
        )
        .unwrap();
        assert_eq!(none.metadata.labels, Some(map(&[("app", "podinfo-primary")])));
        assert_eq!(none.metadata.annotations, Some(BTreeMap::new()));

        let opts = WorkloadOptions {
            include_label_prefixes: vec!["app.kubernetes.io".into()],
            ..Default::default()
        };
        let some = desired_primary(&target(), owner("podinfo"), &opts, &BTreeSet::new(), None, "i").unwrap();
        assert_eq!(
            some.metadata.labels,
            Some(map(&[
                ("app", "podinfo-primary"),
                ("app.kubernetes.io/part-of", "shop")
            ]))
        );
        assert_eq!(
            some.metadata.annotations,
            Some(map(&[("app.kubernetes.io/owner", "me")]))
        );

        let all = WorkloadOptions {
            include_label_prefixes: vec!["*".into()],
            ..Default::default()
        };
        let all = desired_primary(&target(), owner("podinfo"), &all, &BTreeSet::new(), None, "i").unwrap();
        let annotations = all.metadata.annotations.unwrap();
        assert!(
            !annotations.contains_key("kustomize.toolkit.fluxcd.io/checksum"),
            "{annotations:?}"
        );
        assert_eq!(annotations.len(), 2);
    }

    #[test]
    fn a_primary_built_from_the_target_runs_it_whatever_its_flagger_id() {
        let opts = WorkloadOptions::default();
        let primary =
            desired_primary(&target(), owner("podinfo"), &opts, &BTreeSet::new(), None, "id-7").unwrap();
        assert!(runs_target(&primary, &target(), &opts, &BTreeSet::new()).unwrap());

        let mut changed = target();
        changed.spec.template.spec.as_mut().unwrap().containers[0].image = Some("podinfo:2".into());
        assert!(!runs_target(&primary, &changed, &opts, &BTreeSet::new()).unwrap());
    }

    #[test]
    fn replicas_default_to_one_for_a_target_at_zero_and_can_be_pinned() {
        let mut t = target();
        t.spec.replicas = Some(0);
        let opts = WorkloadOptions::default();
        let p = desired_primary(&t, owner("podinfo"), &opts, &BTreeSet::new(), None, "i").unwrap();
        assert_eq!(p.spec.replicas, Some(1));
        let p = desired_primary(&t, owner("podinfo"), &opts, &BTreeSet::new(), Some(7), "i").unwrap();
        assert_eq!(p.spec.replicas, Some(7));
    }

    #[test]
    fn a_target_without_a_selector_label_is_an_error_naming_the_keys() {
        let mut t = target();
        t.spec.selector.match_labels = Some(map(&[("tier", "web")]));
        let err = desired_primary(
            &t,
            owner("podinfo"),
            &WorkloadOptions::default(),
            &BTreeSet::new(),
            None,
            "i",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"deployment podinfo.test spec.selector.matchLabels must contain one of ["app", "name", "app.kubernetes.io/name"]"#
        );
    }

    #[test]
    fn the_first_selector_label_in_preference_order_wins() {
        let mut t = target();
        t.spec.selector.match_labels = Some(map(&[("app.kubernetes.io/name", "a"), ("name", "b")]));
        assert_eq!(
            selector_label(&t, &WorkloadOptions::default()).unwrap(),
            ("name".into(), "b".into())
        );
    }

    #[test]
    fn tracked_config_refs_point_at_primary_copies() {
        let mut t = target();
        let spec = t.spec.template.spec.as_mut().unwrap();
        spec.volumes = Some(vec![
            Volume {
                name: "cfg".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: "cfg".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "untracked".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: "other".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "sec".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some("sec".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "proj".into(),
                projected: Some(ProjectedVolumeSource {
                    sources: Some(vec![VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "cfg".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]);
        let env_cm = EnvVar {
            name: "A".into(),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: "cfg".into(),
                    key: "a".into(),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let env_secret = EnvVar {
            name: "B".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: "sec".into(),
                    key: "b".into(),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        spec.containers[0].env = Some(vec![env_cm.clone(), env_secret]);
        spec.init_containers = Some(vec![Container {
            name: "init".into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "cfg".into(),
                    optional: None,
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }]);
        let tracked = BTreeSet::from([
            ConfigRef::ConfigMap("cfg".into()),
            ConfigRef::Secret("sec".into()),
        ]);
        let p = primary_pod_spec(&t, &tracked, &WorkloadOptions::default());
        let volumes = p.volumes.unwrap();
        assert_eq!(volumes[0].config_map.as_ref().unwrap().name, "cfg-primary");
        assert_eq!(
            volumes[1].config_map.as_ref().unwrap().name,
            "other",
            "untracked refs stay"
        );
        assert_eq!(
            volumes[2].secret.as_ref().unwrap().secret_name.as_deref(),
            Some("sec-primary")
        );
        let projected = volumes[3].projected.as_ref().unwrap().sources.as_ref().unwrap();
        assert_eq!(projected[0].config_map.as_ref().unwrap().name, "cfg-primary");
        let env = p.containers[0].env.as_ref().unwrap();
        assert_eq!(
            env[0]
                .value_from
                .as_ref()
                .unwrap()
                .config_map_key_ref
                .as_ref()
                .unwrap()
                .name,
            "cfg-primary"
        );
        assert_eq!(
            env[1]
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap()
                .name,
            "sec-primary"
        );
        let init = &p.init_containers.unwrap()[0];
        assert_eq!(
            init.env_from.as_ref().unwrap()[0]
                .config_map_ref
                .as_ref()
                .unwrap()
                .name,
            "cfg-primary"
        );
    }

    #[test]
    fn anti_affinity_and_spread_selectors_naming_the_target_name_the_primary() {
        let mut t = target();
        let by_name = || LabelSelector {
            match_labels: Some(map(&[("app", "podinfo"), ("tier", "podinfo")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: "In".into(),
                values: Some(vec!["other".into(), "podinfo".into()]),
            }]),
        };
        let spec = t.spec.template.spec.as_mut().unwrap();
        spec.topology_spread_constraints = Some(vec![TopologySpreadConstraint {
            label_selector: Some(by_name()),
            max_skew: 1,
            topology_key: "zone".into(),
            when_unsatisfiable: "DoNotSchedule".into(),
            ..Default::default()
        }]);
        spec.affinity = Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                    weight: 1,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(by_name()),
                        topology_key: "host".into(),
                        ..Default::default()
                    },
                }]),
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(by_name()),
                    topology_key: "host".into(),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        });
        let p = primary_pod_spec(&t, &BTreeSet::new(), &WorkloadOptions::default());
        let expected = LabelSelector {
            // `tier` is not a selector label key, so its value is left alone.
            match_labels: Some(map(&[("app", "podinfo-primary"), ("tier", "podinfo")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: "In".into(),
                values: Some(vec!["other".into(), "podinfo-primary".into()]),
            }]),
        };
        let spread = p.topology_spread_constraints.unwrap();
        assert_eq!(spread[0].label_selector.as_ref(), Some(&expected));
        let anti = p.affinity.unwrap().pod_anti_affinity.unwrap();
        let preferred = anti.preferred_during_scheduling_ignored_during_execution.unwrap();
        assert_eq!(
            preferred[0].pod_affinity_term.label_selector.as_ref(),
            Some(&expected)
        );
        let required = anti.required_during_scheduling_ignored_during_execution.unwrap();
        assert_eq!(required[0].label_selector.as_ref(), Some(&expected));
    }

    fn daemonset(strategy: Option<&str>, node_selector: &[(&str, &str)]) -> DaemonSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "agent", "namespace": "test", "labels": {"app": "agent", "team": "x"}},
            "spec": {
                "selector": {"matchLabels": {"app": "agent", "tier": "node"}},
                "updateStrategy": strategy.map(|t| serde_json::json!({"type": t})),
                "minReadySeconds": 5,
                "template": {
                    "metadata": {"labels": {"app": "agent", "tier": "node"}, "annotations": {"a": "b"}},
                    "spec": {
                        "nodeSelector": node_selector.iter().cloned().collect::<BTreeMap<_, _>>(),
                        "containers": [{"name": "agent", "image": "agent:1"}]
                    }
                }
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_daemonset_primary_selects_its_own_pods_and_drops_the_scale_to_zero_node_selector() {
        let target = daemonset(
            Some("RollingUpdate"),
            &[("disk", "ssd"), (SCALE_TO_ZERO_NODE_SELECTOR, "true")],
        );
        let opts = WorkloadOptions::default();
        let primary =
            desired_primary_daemonset(&target, owner("agent"), &opts, &BTreeSet::new(), "id-1").unwrap();
        assert_eq!(primary.metadata.name.as_deref(), Some("agent-primary"));
        assert_eq!(
            primary.spec.selector.match_labels,
            Some(map(&[("app", "agent-primary")]))
        );
        assert_eq!(primary.spec.min_ready_seconds, Some(5));
        let template = &primary.spec.template;
        let meta = template.metadata.as_ref().unwrap();
        assert_eq!(
            meta.labels,
            Some(map(&[("app", "agent-primary"), ("tier", "node")]))
        );
        assert_eq!(meta.annotations, Some(map(&[("a", "b"), (FLAGGER_ID, "id-1")])));
        assert_eq!(
            template.spec.as_ref().unwrap().node_selector,
            Some(map(&[("disk", "ssd")]))
        );
        assert!(runs_target(&primary, &target, &opts, &BTreeSet::new()).unwrap());
    }

    #[test]
    fn a_daemonset_must_roll_out_with_rolling_update() {
        let opts = WorkloadOptions::default();
        for ok in [None, Some("RollingUpdate")] {
            assert!(
                desired_primary_daemonset(&daemonset(ok, &[]), owner("agent"), &opts, &BTreeSet::new(), "x")
                    .is_ok()
            );
        }
        let err = desired_primary_daemonset(
            &daemonset(Some("OnDelete"), &[]),
            owner("agent"),
            &opts,
            &BTreeSet::new(),
            "x",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "daemonset agent.test must have RollingUpdate strategy but have OnDelete"
        );
        let mut no_label = daemonset(None, &[]);
        no_label.spec.selector.match_labels = Some(map(&[("tier", "node")]));
        assert_eq!(
            selector_label(&no_label, &opts).unwrap_err().to_string(),
            "daemonset agent.test spec.selector.matchLabels must contain one of [\"app\", \"name\", \"app.kubernetes.io/name\"]"
        );
    }
}
