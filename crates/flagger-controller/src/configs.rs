//! Config tracking in the controller (Flagger 1.44 §2.9): the ConfigMaps and Secrets a target uses, read
//! from the watch caches, their checksums for `status.trackedConfigs`, and their `<name>-primary` copies.
//!
//! The pure rules (which references count, which objects are tracked, the checksums and the copies) are in
//! [`flagger_core::config`]; this module looks the objects up and writes the copies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use flagger_core::config::{self, ConfigRef};
use flagger_core::hash::HashError;
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

use crate::act::{ApplyError, is_subset};
use crate::cache::Caches;
use crate::context::Context;

/// A required ConfigMap or Secret is missing. Flagger's message; looking again later may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name}.{namespace} get query error: {plural} \"{name}\" not found")]
pub struct MissingConfig {
    /// `configmap` or `secret`.
    pub kind: &'static str,
    /// `configmaps` or `secrets`.
    pub plural: &'static str,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
}

/// The tracked ConfigMaps and Secrets of a target, as the caches show them.
#[derive(Clone, Debug, Default)]
pub struct TrackedConfigs {
    /// Tracked ConfigMaps.
    pub config_maps: Vec<Arc<ConfigMap>>,
    /// Tracked Secrets.
    pub secrets: Vec<Arc<Secret>>,
}

impl TrackedConfigs {
    /// The tracked objects by reference (what the primary's references are renamed for).
    pub fn refs(&self) -> BTreeSet<ConfigRef> {
        self.config_maps
            .iter()
            .map(|cm| ConfigRef::ConfigMap(cm.name_any()))
            .chain(self.secrets.iter().map(|s| ConfigRef::Secret(s.name_any())))
            .collect()
    }

    /// `status.trackedConfigs`: `configmap/<name>` or `secret/<name>` → Flagger's checksum of the data.
    pub fn checksums(&self) -> Result<BTreeMap<String, String>, HashError> {
        let mut out = BTreeMap::new();
        for cm in &self.config_maps {
            out.insert(
                ConfigRef::ConfigMap(cm.name_any()).status_key(),
                config::config_map_checksum(cm)?,
            );
        }
        for secret in &self.secrets {
            out.insert(
                ConfigRef::Secret(secret.name_any()).status_key(),
                config::secret_checksum(secret)?,
            );
        }
        Ok(out)
    }
}

/// The tracked configs of a pod spec in `namespace`. A required reference to a missing object is an error;
/// an `optional` one is skipped, as are objects opted out with `flagger.app/config-tracking: disabled` and
/// Secrets of untracked types.
pub fn observe(caches: &Caches, namespace: &str, spec: &PodSpec) -> Result<TrackedConfigs, MissingConfig> {
    let mut tracked = TrackedConfigs::default();
    for (reference, required) in config::referenced(spec) {
        match &reference {
            ConfigRef::ConfigMap(name) => match caches.config_map(namespace, name) {
                Some(cm) if config::tracks_config_map(&cm) => tracked.config_maps.push(cm),
                Some(_) => {}
                None if required => {
                    return Err(MissingConfig {
                        kind: "configmap",
                        plural: "configmaps",
                        name: name.clone(),
                        namespace: namespace.to_owned(),
                    });
                }
                None => tracing::debug!("optional configmap {name}.{namespace} not found, skipping"),
            },
            ConfigRef::Secret(name) => match caches.secret(namespace, name) {
                Some(secret) if config::tracks_secret(&secret) => tracked.secrets.push(secret),
                Some(_) => {}
                None if required => {
                    return Err(MissingConfig {
                        kind: "secret",
                        plural: "secrets",
                        name: name.clone(),
                        namespace: namespace.to_owned(),
                    });
                }
                None => tracing::debug!("optional secret {name}.{namespace} not found, skipping"),
            },
        }
    }
    Ok(tracked)
}

/// Whether a copy must be written: it is missing, its data (or type) is not exactly the desired data, or
/// the desired metadata is not all there.
fn differs<K: serde::Serialize>(desired: &K, actual: Option<&K>) -> bool {
    let Some(actual) = actual else {
        return true;
    };
    match (serde_json::to_value(desired), serde_json::to_value(actual)) {
        (Ok(d), Ok(a)) => {
            let exact = ["data", "binaryData", "type"]
                .iter()
                .all(|k| d.get(k).filter(|v| !v.is_null()) == a.get(k).filter(|v| !v.is_null()));
            !(exact && is_subset(&d["metadata"], &a["metadata"]))
        }
        _ => true,
    }
}

/// Whether some `-primary` copy is missing or holds other data than its source: the primary does not run
/// the current configs yet (a promotion must then restart it).
pub fn copies_outdated(caches: &Caches, tracked: &TrackedConfigs) -> bool {
    tracked.config_maps.iter().any(|cm| {
        let ns = cm.namespace().unwrap_or_default();
        caches
            .config_map(&ns, &copy_name(&cm.name_any()))
            .is_none_or(|c| c.data != cm.data || c.binary_data != cm.binary_data)
    }) || tracked.secrets.iter().any(|s| {
        let ns = s.namespace().unwrap_or_default();
        caches
            .secret(&ns, &copy_name(&s.name_any()))
            .is_none_or(|c| c.data != s.data)
    })
}

/// Creates or updates the `<name>-primary` copies of the tracked configs (Flagger's
/// `CreatePrimaryConfigs`), writing only those that differ from the cache, and makes the Canary an owner of
/// each.
pub async fn sync_primary_copies(
    ctx: &Context,
    canary: &flagger_api::Canary,
    tracked: &TrackedConfigs,
) -> Result<(), ApplyError> {
    let Some(owner) = flagger_k8s::owner_reference(canary) else {
        return Ok(());
    };
    let prefixes = &ctx.config.workload.include_label_prefixes;
    for cm in &tracked.config_maps {
        let desired = config::primary_config_map(cm, prefixes);
        let existing = ctx
            .caches
            .config_map(&namespace_of(&desired), &desired.name_any());
        let copy = sync_copy(ctx, &desired, existing).await?;
        ensure_owner(ctx, &owner, copy).await?;
    }
    for secret in &tracked.secrets {
        let desired = config::primary_secret(secret, prefixes);
        let existing = ctx.caches.secret(&namespace_of(&desired), &desired.name_any());
        let copy = sync_copy(ctx, &desired, existing).await?;
        ensure_owner(ctx, &owner, copy).await?;
    }
    Ok(())
}

/// Makes the Canary an owner of the existing `-primary` copies of its tracked configs. Run on every
/// reconcile (a copy's change triggers one), so a copy shared with other Canaries is never
/// garbage-collected while this Canary's primary still uses it, even if another writer dropped the owner
/// (Go Flagger's unconditional updates of a shared copy can).
pub async fn ensure_copy_owners(
    ctx: &Context,
    canary: &flagger_api::Canary,
    tracked: &TrackedConfigs,
) -> Result<(), ApplyError> {
    let Some(owner) = flagger_k8s::owner_reference(canary) else {
        return Ok(());
    };
    for cm in &tracked.config_maps {
        if let Some(existing) = ctx
            .caches
            .config_map(&namespace_of(cm.as_ref()), &copy_name(&cm.name_any()))
        {
            ensure_owner(ctx, &owner, existing).await?;
        }
    }
    for s in &tracked.secrets {
        if let Some(existing) = ctx
            .caches
            .secret(&namespace_of(s.as_ref()), &copy_name(&s.name_any()))
        {
            ensure_owner(ctx, &owner, existing).await?;
        }
    }
    Ok(())
}

/// The name of the `-primary` copy of the config `source`.
fn copy_name(source: &str) -> String {
    format!("{source}{}", flagger_core::primary::PRIMARY_SUFFIX)
}

fn namespace_of<K: kube::Resource>(obj: &K) -> String {
    obj.meta().namespace.clone().unwrap_or_default()
}

/// Server-side applies a copy's data and metadata when they differ from `existing`, returning the copy as
/// it now is. Canaries sharing a config apply the same content, so concurrent applies agree.
async fn sync_copy<K>(ctx: &Context, desired: &K, existing: Option<Arc<K>>) -> Result<Arc<K>, ApplyError>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match existing {
        Some(existing) if !differs(desired, Some(existing.as_ref())) => Ok(existing),
        _ => {
            ctx.gate.check()?;
            let copy = flagger_k8s::apply_primary_object(&ctx.client, desired)
                .await
                .map_err(Box::new)?;
            tracing::info!("{} {} synced", K::kind(&()), copy.name_any());
            Ok(Arc::new(copy))
        }
    }
}

/// How often adding an owner is tried again after another writer changed the copy in between.
const OWNER_ATTEMPTS: usize = 5;

/// Adds the Canary's owner reference to `copy` unless it is there. The patch is conditional on the copy's
/// resource version; on a conflict the copy is read again and the decision made again. Nothing is copied
/// or sent when the (cached) copy already names the Canary.
async fn ensure_owner<K>(ctx: &Context, owner: &OwnerReference, mut copy: Arc<K>) -> Result<(), ApplyError>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    for attempt in 1..=OWNER_ATTEMPTS {
        let Some(reference) = config::missing_owner(owner.clone(), copy.meta()) else {
            return Ok(());
        };
        ctx.gate.check()?;
        match flagger_k8s::add_owner_reference(&ctx.client, copy.as_ref(), &reference).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() && attempt < OWNER_ATTEMPTS => {
                let api: kube::Api<K> =
                    kube::Api::namespaced(ctx.client.clone(), &namespace_of(copy.as_ref()));
                match api.get_opt(&copy.name_any()).await {
                    Ok(Some(current)) => copy = Arc::new(current),
                    // Deleted in between: the next sync creates it again.
                    Ok(None) => return Ok(()),
                    Err(_) => return Err(Box::new(e).into()),
                }
            }
            Err(e) => return Err(Box::new(e).into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_configs_read_like_flaggers_errors() {
        let e = MissingConfig {
            kind: "configmap",
            plural: "configmaps",
            name: "podinfo-config".into(),
            namespace: "test".into(),
        };
        assert_eq!(
            e.to_string(),
            "configmap podinfo-config.test get query error: configmaps \"podinfo-config\" not found"
        );
    }
}
