//! What the Traefik, Kuma, APISIX and Gloo router tests share: a namespace with Flagger's CRDs and a router's
//! CRD fixture, a stored Canary (so it has a uid), watch caches, and polling of `get_routes`.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Context, Result};
use flagger_api::Canary;
use flagger_controller::cache::Caches;
use flagger_controller::gate::WriteGate;
use flagger_controller::router::{AnyRouter, RouteCx};
use flagger_core::machine::Routes;
use flagger_core::provider::MeshProvider;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};
use testkit::kube::poll;
use testkit::{TestNamespace, apply_yaml, install_crds, wait_for};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How long the watch cache may take to show a write.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Applies a CRD fixture and waits until each of its CRDs is Established.
pub async fn install_fixture(client: &kube::Client, yaml: &str) -> Result<()> {
    let applied = apply_yaml(client, "default", yaml).await?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in applied {
        let name = crd.metadata.name.clone().unwrap_or_default();
        wait_for(&api, &name, "Established", DEADLINE, |crd| {
            crd.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
        })
        .await?;
    }
    Ok(())
}

/// A test namespace with a Canary and watch caches.
pub struct Env {
    pub ns: TestNamespace,
    pub canary: Canary,
    pub caches: Caches,
    pub router: AnyRouter,
    pub _stop: DropGuard,
}

impl Env {
    /// `spec` is merged over a Deployment target `podinfo`.
    pub async fn new(prefix: &str, crds: &str, provider: &str, metadata: Value, spec: Value) -> Result<Self> {
        let ns = TestNamespace::new(prefix).await?;
        install_crds(&ns.client, &flagger_api::crds()).await?;
        install_fixture(&ns.client, crds).await?;
        let mut full = json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "provider": provider,
            "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 25},
        });
        for (k, v) in spec.as_object().cloned().unwrap_or_default() {
            full[k] = v;
        }
        let mut meta = json!({"name": "podinfo", "namespace": ns.name});
        for (k, v) in metadata.as_object().cloned().unwrap_or_default() {
            meta[k] = v;
        }
        let canary: Canary = serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": meta, "spec": full,
        }))?;
        let canary = ns
            .api::<Canary>()
            .create(&PostParams::default(), &canary)
            .await
            .context("creating the Canary")?;
        let token = CancellationToken::new();
        let (caches, _triggers) = Caches::start(&ns.client, Some(&ns.name), &token);
        let router = AnyRouter::for_provider(&MeshProvider::parse(provider).unwrap());
        Ok(Self {
            ns,
            canary,
            caches,
            router,
            _stop: token.drop_guard(),
        })
    }

    pub fn cx<'a>(&'a self, gate: &'a WriteGate) -> RouteCx<'a> {
        RouteCx {
            client: &self.ns.client,
            caches: &self.caches,
            canary: &self.canary,
            gate,
        }
    }

    pub fn api(&self, resource: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.ns.client.clone(), &self.ns.name, resource)
    }

    /// Polls `get_routes` until it returns `expected`.
    pub async fn wait_for_routes(&self, expected: Routes) -> Result<()> {
        let gate = WriteGate::open();
        poll(&format!("routes {expected:?}"), DEADLINE, || async {
            Ok(match self.router.get_routes(&self.cx(&gate)).await {
                Ok(routes) if routes == expected => Ok(()),
                other => Err(format!("{other:?}")),
            })
        })
        .await
    }

    /// Polls until the watch cache shows `resource`/`name` with `resourceVersion` `rv` (or later).
    pub async fn wait_for_cache(
        &self,
        resource: &ApiResource,
        namespaced: bool,
        name: &str,
        rv: &str,
    ) -> Result<()> {
        let store = self.caches.dynamic(resource, namespaced).await?;
        poll(&format!("cache of {name} at {rv}"), DEADLINE, || async {
            let mut key = kube::runtime::reflector::ObjectRef::new_with(name, resource.clone());
            if namespaced {
                key = key.within(&self.ns.name);
            }
            let seen = store.get(&key).and_then(|o| o.metadata.resource_version.clone());
            Ok(if seen.as_deref() == Some(rv) {
                Ok(())
            } else {
                Err(seen)
            })
        })
        .await
    }
}

/// A gate that refuses every write.
pub fn closed_gate() -> WriteGate {
    let (_tx, rx) = watch::channel(false);
    WriteGate::new(rx)
}

pub fn routes(primary: i32, canary: i32) -> Routes {
    Routes {
        primary,
        canary,
        mirrored: false,
    }
}

/// A Canary for the pure builders (snapshot tests): namespace `test`, a fixed uid.
pub fn offline_canary(spec: Value) -> Canary {
    let mut full = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898, "apex": {"labels": {"app": "podinfo"}, "annotations": {"team": "web"}}},
    });
    for (k, v) in spec.as_object().cloned().unwrap_or_default() {
        full[k] = v;
    }
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "5d1b4c4e-0000-4000-8000-000000000001"},
        "spec": full,
    }))
    .unwrap()
}

/// Whether `object` was written by `manager`.
pub fn written_by(object: &DynamicObject, manager: &str) -> bool {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .any(|m| m.manager.as_deref() == Some(manager))
}
