//! Config tracking (Flagger 1.44 §2.9), the pure parts: which ConfigMaps and Secrets a pod template uses,
//! which of them are tracked, their `-primary` copies, and whether they changed since the last release.
//!
//! A change to a tracked ConfigMap's or Secret's data starts an analysis exactly like a change to the pod
//! template. The primary runs on `<name>-primary` copies, promoted together with the template.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::hash::{HashError, config_checksum};
use crate::primary::{PRIMARY_SUFFIX, include_by_prefix};

/// The annotation that opts a ConfigMap or Secret out of tracking (any value starting with `disable`).
pub const TRACKING_ANNOTATION: &str = "flagger.app/config-tracking";

/// Secret types that are tracked; others (service-account tokens, docker configs, ...) are left alone.
pub const TRACKED_SECRET_TYPES: [&str; 4] = [
    "Opaque",
    "kubernetes.io/basic-auth",
    "kubernetes.io/ssh-auth",
    "kubernetes.io/tls",
];

/// A ConfigMap or Secret used by a pod template, by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigRef {
    ConfigMap(String),
    Secret(String),
}

impl ConfigRef {
    /// The key in `status.trackedConfigs`: `configmap/<name>` or `secret/<name>`.
    pub fn status_key(&self) -> String {
        match self {
            Self::ConfigMap(name) => format!("configmap/{name}"),
            Self::Secret(name) => format!("secret/{name}"),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::ConfigMap(name) | Self::Secret(name) => name,
        }
    }
}

/// Every ConfigMap and Secret the pod spec references (volumes, projected volumes, and env/envFrom of
/// containers and init containers), each with whether it is required (`optional` unset or false). When one
/// is referenced several times, the last reference decides, as in Flagger.
pub fn referenced(spec: &PodSpec) -> BTreeMap<ConfigRef, bool> {
    let required = |optional: Option<bool>| !optional.unwrap_or(false);
    let mut refs = BTreeMap::new();
    for volume in spec.volumes.iter().flatten() {
        if let Some(cm) = &volume.config_map {
            refs.insert(ConfigRef::ConfigMap(cm.name.clone()), required(cm.optional));
        }
        if let Some(secret) = &volume.secret {
            let name = secret.secret_name.clone().unwrap_or_default();
            refs.insert(ConfigRef::Secret(name), required(secret.optional));
        }
        for source in volume.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &source.config_map {
                refs.insert(ConfigRef::ConfigMap(cm.name.clone()), required(cm.optional));
            }
            if let Some(secret) = &source.secret {
                refs.insert(ConfigRef::Secret(secret.name.clone()), required(secret.optional));
            }
        }
    }
    for container in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for from in container
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.value_from.as_ref())
        {
            if let Some(cm) = &from.config_map_key_ref {
                refs.insert(ConfigRef::ConfigMap(cm.name.clone()), required(cm.optional));
            } else if let Some(secret) = &from.secret_key_ref {
                refs.insert(ConfigRef::Secret(secret.name.clone()), required(secret.optional));
            }
        }
        for from in container.env_from.iter().flatten() {
            if let Some(cm) = &from.config_map_ref {
                refs.insert(ConfigRef::ConfigMap(cm.name.clone()), required(cm.optional));
            } else if let Some(secret) = &from.secret_ref {
                refs.insert(ConfigRef::Secret(secret.name.clone()), required(secret.optional));
            }
        }
    }
    refs
}

/// Whether the object opted out of tracking with `flagger.app/config-tracking: disabled`.
pub fn tracking_disabled(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(TRACKING_ANNOTATION))
        .is_some_and(|v| v.starts_with("disable"))
}

/// Whether a ConfigMap is tracked.
pub fn tracks_config_map(cm: &ConfigMap) -> bool {
    !tracking_disabled(&cm.metadata)
}

/// Whether a Secret is tracked: one of [`TRACKED_SECRET_TYPES`] (a Secret without a type is Opaque) and not
/// opted out.
pub fn tracks_secret(secret: &Secret) -> bool {
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    TRACKED_SECRET_TYPES.contains(&type_) && !tracking_disabled(&secret.metadata)
}

/// Flagger's checksum of a ConfigMap's data.
pub fn config_map_checksum(cm: &ConfigMap) -> Result<String, HashError> {
    config_checksum(&cm.data)
}

/// Flagger's checksum of a Secret's data.
pub fn secret_checksum(secret: &Secret) -> Result<String, HashError> {
    config_checksum(&secret.data)
}

/// Whether the tracked configs changed since `stored` (`status.trackedConfigs`): a config appeared or
/// disappeared, or a checksum differs. Nothing tracked and nothing stored is no change.
pub fn configs_changed(
    current: &BTreeMap<String, String>,
    stored: Option<&BTreeMap<String, String>>,
) -> bool {
    match stored {
        None => !current.is_empty(),
        Some(stored) => current != stored,
    }
}

/// The owner reference a Canary must add to a `-primary` copy it uses, or `None` when the copy already
/// names it. Copies are shared by every Canary whose target uses the config, so each adds itself (the
/// copy is garbage-collected only when the last of them is deleted); the first becomes the controller.
pub fn missing_owner(owner: OwnerReference, copy: &ObjectMeta) -> Option<OwnerReference> {
    let existing = copy.owner_references.as_deref().unwrap_or_default();
    if existing.iter().any(|r| r.uid == owner.uid) {
        return None;
    }
    let has_controller = existing.iter().any(|r| r.controller == Some(true));
    Some(OwnerReference {
        controller: Some(!has_controller),
        ..owner
    })
}

/// The metadata of a `-primary` copy. Its owner references are not part of it: they are added one Canary
/// at a time ([`missing_owner`]) so that Canaries sharing the copy never overwrite each other's.
fn primary_meta(source: &ObjectMeta, include_prefixes: &[String]) -> ObjectMeta {
    ObjectMeta {
        name: Some(format!(
            "{}{PRIMARY_SUFFIX}",
            source.name.as_deref().unwrap_or_default()
        )),
        namespace: source.namespace.clone(),
        labels: Some(include_by_prefix(source.labels.as_ref(), include_prefixes)),
        ..Default::default()
    }
}

/// The `<name>-primary` copy of a tracked ConfigMap. Unlike Flagger, `binaryData` is copied too (Flagger drops it, so a primary
/// mounting binary keys breaks).
pub fn primary_config_map(cm: &ConfigMap, include_prefixes: &[String]) -> ConfigMap {
    ConfigMap {
        metadata: primary_meta(&cm.metadata, include_prefixes),
        data: cm.data.clone(),
        binary_data: cm.binary_data.clone(),
        immutable: None,
    }
}

/// The `<name>-primary` copy of a tracked Secret, with its type and data.
pub fn primary_secret(secret: &Secret, include_prefixes: &[String]) -> Secret {
    Secret {
        metadata: primary_meta(&secret.metadata, include_prefixes),
        data: secret.data.clone(),
        type_: secret.type_.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapProjection, ConfigMapVolumeSource, Container,
        EnvFromSource, EnvVar, EnvVarSource, ProjectedVolumeSource, SecretEnvSource, SecretKeySelector,
        SecretProjection, SecretVolumeSource, Volume, VolumeProjection,
    };

    use super::*;
    use crate::test_support::owner;

    fn spec() -> PodSpec {
        let env = |cm: Option<(&str, Option<bool>)>, secret: Option<(&str, Option<bool>)>| EnvVar {
            name: "X".into(),
            value_from: Some(EnvVarSource {
                config_map_key_ref: cm.map(|(n, o)| ConfigMapKeySelector {
                    name: n.into(),
                    key: "k".into(),
                    optional: o,
                }),
                secret_key_ref: secret.map(|(n, o)| SecretKeySelector {
                    name: n.into(),
                    key: "k".into(),
                    optional: o,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        PodSpec {
            volumes: Some(vec![
                Volume {
                    name: "a".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: "vol-cm".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "b".into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some("vol-secret".into()),
                        optional: Some(true),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "c".into(),
                    projected: Some(ProjectedVolumeSource {
                        sources: Some(vec![
                            VolumeProjection {
                                config_map: Some(ConfigMapProjection {
                                    name: "proj-cm".into(),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            },
                            VolumeProjection {
                                secret: Some(SecretProjection {
                                    name: "proj-secret".into(),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            },
                        ]),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            containers: vec![Container {
                name: "app".into(),
                env: Some(vec![
                    env(Some(("env-cm", None)), None),
                    env(None, Some(("env-secret", Some(false)))),
                ]),
                env_from: Some(vec![EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "vol-cm".into(),
                        optional: Some(true),
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            init_containers: Some(vec![Container {
                name: "init".into(),
                env_from: Some(vec![EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: "init-secret".into(),
                        optional: None,
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn every_kind_of_reference_is_found_with_its_optionality() {
        let refs = referenced(&spec());
        let expected = BTreeMap::from([
            (ConfigRef::ConfigMap("env-cm".into()), true),
            (ConfigRef::ConfigMap("proj-cm".into()), true),
            // referenced by a volume (required) and then by envFrom (optional): the last one decides
            (ConfigRef::ConfigMap("vol-cm".into()), false),
            (ConfigRef::Secret("env-secret".into()), true),
            (ConfigRef::Secret("init-secret".into()), true),
            (ConfigRef::Secret("proj-secret".into()), true),
            (ConfigRef::Secret("vol-secret".into()), false),
        ]);
        assert_eq!(refs, expected);
    }

    #[test]
    fn status_keys_are_flaggers() {
        assert_eq!(ConfigRef::ConfigMap("a".into()).status_key(), "configmap/a");
        assert_eq!(ConfigRef::Secret("b".into()).status_key(), "secret/b");
    }

    #[test]
    fn opt_outs_and_secret_types() {
        let mut cm = ConfigMap::default();
        assert!(tracks_config_map(&cm));
        cm.metadata.annotations = Some(BTreeMap::from([(
            TRACKING_ANNOTATION.to_string(),
            "disabled".to_string(),
        )]));
        assert!(!tracks_config_map(&cm));

        let secret = |t: Option<&str>| Secret {
            type_: t.map(String::from),
            ..Default::default()
        };
        assert!(tracks_secret(&secret(None)));
        assert!(tracks_secret(&secret(Some("kubernetes.io/tls"))));
        assert!(!tracks_secret(&secret(Some("kubernetes.io/dockerconfigjson"))));
        assert!(!tracks_secret(&secret(Some(
            "kubernetes.io/service-account-token"
        ))));
    }

    #[test]
    fn change_detection_follows_flagger() {
        let current = BTreeMap::from([("configmap/a".to_string(), "1".to_string())]);
        assert!(
            !configs_changed(&BTreeMap::new(), None),
            "nothing tracked, nothing stored"
        );
        assert!(configs_changed(&current, None), "found but never stored");
        assert!(!configs_changed(&current, Some(&current.clone())));
        let other = BTreeMap::from([("configmap/a".to_string(), "2".to_string())]);
        assert!(configs_changed(&current, Some(&other)), "checksum differs");
        assert!(
            configs_changed(&BTreeMap::new(), Some(&current)),
            "a config went away"
        );
    }

    #[test]
    fn primary_copies_keep_data_type_and_other_canaries() {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("cfg".into()),
                namespace: Some("test".into()),
                labels: Some(BTreeMap::from([("app".to_string(), "x".to_string())])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
            binary_data: Some(BTreeMap::from([("b".to_string(), ByteString(vec![1, 2]))])),
            immutable: None,
        };
        let copy = primary_config_map(&cm, &[]);
        assert_eq!(copy.metadata.name.as_deref(), Some("cfg-primary"));
        assert_eq!(
            copy.metadata.labels,
            Some(BTreeMap::new()),
            "labels follow -include-label-prefix"
        );
        assert_eq!(copy.data, cm.data);
        assert_eq!(copy.binary_data, cm.binary_data);
        assert_eq!(
            copy.metadata.owner_references, None,
            "owners are added one by one"
        );

        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("tls".into()),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(BTreeMap::from([(
                "tls.crt".to_string(),
                ByteString(b"x".to_vec()),
            )])),
            ..Default::default()
        };
        let copy = primary_secret(&secret, &["*".to_string()]);
        assert_eq!(copy.metadata.name.as_deref(), Some("tls-primary"));
        assert_eq!(copy.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(copy.data, secret.data);
        assert_eq!(copy.metadata.owner_references, None);
    }

    #[test]
    fn each_sharing_canary_adds_itself_once_and_the_first_is_the_controller() {
        let mut copy = ObjectMeta::default();
        let first = missing_owner(owner("web"), &copy).unwrap();
        assert_eq!(first.controller, Some(true));
        copy.owner_references = Some(vec![first]);
        assert_eq!(missing_owner(owner("web"), &copy), None, "already an owner");
        let second = missing_owner(owner("api"), &copy).unwrap();
        assert_eq!((second.name.as_str(), second.controller), ("api", Some(false)));
        // A copy whose controller was removed (its Canary deleted) gets the next Canary as controller.
        copy.owner_references = Some(vec![OwnerReference {
            controller: Some(false),
            ..owner("api")
        }]);
        assert_eq!(missing_owner(owner("web"), &copy).unwrap().controller, Some(true));
    }

    #[test]
    fn checksums_cover_data() {
        let mut cm = ConfigMap {
            data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
            ..Default::default()
        };
        let before = config_map_checksum(&cm).unwrap();
        cm.data = Some(BTreeMap::from([("k".to_string(), "w".to_string())]));
        assert_ne!(before, config_map_checksum(&cm).unwrap());
    }
}
