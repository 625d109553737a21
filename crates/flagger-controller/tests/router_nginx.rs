//! The NGINX router against the local control plane: the canary Ingress is created from the user's Ingress,
//! kept in sync, weighted and shaped for A/B through the watch caches; a pre-existing canary Ingress is taken
//! over keeping what the router does not own.
//!
//! Needs the local control plane (`eval "$(cargo xtask testenv env)"`).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use flagger_api::Canary;
use flagger_controller::cache::Caches;
use flagger_controller::gate::WriteGate;
use flagger_controller::router::nginx::{self, NginxRouter};
use flagger_controller::router::{RouteCx, RouterError};
use flagger_core::machine::Routes;
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testkit::kube::poll;
use testkit::{TestNamespace, install_crds};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

const DEADLINE: Duration = Duration::from_secs(20);
const P: &str = "custom.ingress.kubernetes.io";

struct Env {
    ns: TestNamespace,
    caches: Caches,
    _stop: DropGuard,
}

impl Env {
    async fn new(prefix: &str) -> Result<Self> {
        let ns = TestNamespace::new(prefix).await?;
        install_crds(&ns.client, &flagger_api::crds()).await?;
        let token = CancellationToken::new();
        let (caches, _triggers) = Caches::start(&ns.client, Some(&ns.name), &token);
        Ok(Self {
            ns,
            caches,
            _stop: token.drop_guard(),
        })
    }

    async fn canary(&self, analysis: Value) -> Result<Canary> {
        let canary: Canary = serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": self.ns.name},
            "spec": {
                "provider": "nginx",
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"},
                "service": {"port": 80},
                "analysis": analysis,
            },
        }))?;
        Ok(self
            .ns
            .api::<Canary>()
            .create(&PostParams::default(), &canary)
            .await?)
    }

    fn cx<'a>(&'a self, canary: &'a Canary, gate: &'a WriteGate) -> RouteCx<'a> {
        RouteCx {
            client: &self.ns.client,
            caches: &self.caches,
            canary,
            gate,
        }
    }

    fn ingresses(&self) -> Api<Ingress> {
        self.ns.api::<Ingress>()
    }

    async fn wait_for_routes(&self, router: &NginxRouter, canary: &Canary, expected: Routes) -> Result<()> {
        let gate = WriteGate::open();
        poll(&format!("routes {expected:?}"), DEADLINE, || async {
            Ok(match router.get_routes(&self.cx(canary, &gate)).await {
                Ok(routes) if routes == expected => Ok(()),
                other => Err(format!("{other:?}")),
            })
        })
        .await
    }

    /// Waits until the cache shows `annotation: value` on the canary Ingress.
    async fn wait_cached(&self, annotation: &str, value: &str) -> Result<()> {
        poll(&format!("{annotation}={value} cached"), DEADLINE, || async {
            let store = self.caches.dynamic(&nginx::ingress_resource(), true).await?;
            let found = store.state().iter().any(|o| {
                o.name_any() == "podinfo-canary"
                    && o.annotations().get(annotation).map(String::as_str) == Some(value)
            });
            Ok(if found { Ok(()) } else { Err("not yet") })
        })
        .await
    }
}

fn closed_gate() -> WriteGate {
    let (_tx, rx) = watch::channel(false);
    WriteGate::new(rx)
}

fn weights(canary: i32) -> Routes {
    Routes {
        primary: 100 - canary,
        canary,
        mirrored: false,
    }
}

async fn user_ingress(env: &Env) -> Result<Ingress> {
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {
            "name": "podinfo",
            "labels": {"app": "podinfo"},
            "annotations": {
                "kubernetes.io/ingress.class": "nginx",
                "custom.ingress.kubernetes.io/canary-by-header": "stale",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
        },
        "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}},
        ]}}]},
    }))?;
    Ok(env.ingresses().create(&PostParams::default(), &ingress).await?)
}

fn annotations(i: &Ingress) -> BTreeMap<String, String> {
    i.annotations().clone()
}

#[tokio::test]
async fn creates_weights_and_follows_the_user_ingress() -> Result<()> {
    let env = Env::new("nginx-router").await?;
    let canary = env
        .canary(json!({"interval": "1m", "threshold": 2, "maxWeight": 50, "stepWeight": 25}))
        .await?;
    let router = NginxRouter::new(P);
    let (open, closed) = (WriteGate::open(), closed_gate());
    let ns = env.ns.name.clone();

    match router.reconcile(&env.cx(&canary, &open)).await {
        Err(RouterError::Invalid(m)) => ensure!(
            m == format!(
                "ingress podinfo.{ns} get query error: ingresses.networking.k8s.io \"podinfo\" not found"
            ),
            "{m}"
        ),
        other => bail!("expected Flagger's get query error, got {other:?}"),
    }
    user_ingress(&env).await?;
    poll("user ingress cached", DEADLINE, || async {
        Ok(match router.reconcile(&env.cx(&canary, &closed)).await {
            Err(RouterError::NotLeader(_)) => Ok(()),
            other => Err(format!("{other:?}")),
        })
    })
    .await?;
    ensure!(
        env.ingresses().get_opt("podinfo-canary").await?.is_none(),
        "created without the gate"
    );

    router.reconcile(&env.cx(&canary, &open)).await?;
    let created = env.ingresses().get("podinfo-canary").await?;
    ensure!(
        annotations(&created)
            == BTreeMap::from([
                ("kubernetes.io/ingress.class".to_owned(), "nginx".to_owned()),
                (
                    "kustomize.toolkit.fluxcd.io/reconcile".to_owned(),
                    "disabled".to_owned()
                ),
                (
                    "helm.toolkit.fluxcd.io/driftDetection".to_owned(),
                    "disabled".to_owned()
                ),
                (format!("{P}/canary"), "true".to_owned()),
                (format!("{P}/canary-weight"), "0".to_owned()),
            ]),
        "{:?}",
        created.annotations()
    );
    ensure!(created.labels().get("app").map(String::as_str) == Some("podinfo"));
    let owner = &created.owner_references()[0];
    ensure!(
        owner.kind == "Canary" && owner.controller == Some(true) && Some(&owner.uid) == canary.uid().as_ref()
    );
    let backend = serde_json::to_value(&created.spec)?;
    ensure!(backend["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "podinfo-canary");

    env.wait_for_routes(&router, &canary, Routes::PRIMARY).await?;
    let rv = created.resource_version();
    router.reconcile(&env.cx(&canary, &open)).await?;
    ensure!(
        env.ingresses().get("podinfo-canary").await?.resource_version() == rv,
        "no-op reconcile wrote"
    );

    // Another controller's annotation on the canary Ingress survives the weight writes.
    env.ingresses()
        .patch(
            "podinfo-canary",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"team.example.com/owner": "web"}}})),
        )
        .await?;
    env.wait_cached("team.example.com/owner", "web").await?;

    match router.set_routes(&env.cx(&canary, &closed), weights(25)).await {
        Err(RouterError::NotLeader(_)) => {}
        other => bail!("a closed gate must refuse set_routes, got {other:?}"),
    }
    for w in [25, 50] {
        router.set_routes(&env.cx(&canary, &open), weights(w)).await?;
        env.wait_for_routes(&router, &canary, weights(w)).await?;
        let live = env.ingresses().get("podinfo-canary").await?;
        ensure!(live.annotations().get(&format!("{P}/canary-weight")) == Some(&w.to_string()));
        ensure!(
            live.annotations()
                .get("team.example.com/owner")
                .map(String::as_str)
                == Some("web")
        );
    }
    router
        .set_routes(&env.cx(&canary, &open), Routes::PRIMARY)
        .await?;
    env.wait_for_routes(&router, &canary, Routes::PRIMARY).await?;

    // A change of the user's Ingress reaches the canary Ingress's spec; annotations stay.
    env.ingresses()
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"rules": [{"host": "new.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}},
            ]}}]}})),
        )
        .await?;
    poll("canary ingress follows the host", DEADLINE, || async {
        router.reconcile(&env.cx(&canary, &open)).await?;
        let live = env.ingresses().get("podinfo-canary").await?;
        let host = live
            .spec
            .as_ref()
            .and_then(|s| s.rules.as_ref())
            .and_then(|r| r[0].host.clone());
        Ok(if host.as_deref() == Some("new.example.com") {
            Ok(live)
        } else {
            Err(host)
        })
    })
    .await
    .and_then(|live| {
        ensure!(
            live.annotations()
                .get("team.example.com/owner")
                .map(String::as_str)
                == Some("web")
        );
        ensure!(live.annotations().get(&format!("{P}/canary")).map(String::as_str) == Some("true"));
        Ok(())
    })?;

    // Flagger's finalize does nothing for NGINX: the canary Ingress stays until the Canary goes.
    router.finalize(&env.cx(&canary, &open)).await?;
    ensure!(env.ingresses().get_opt("podinfo-canary").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn takes_over_a_canary_ingress_and_shapes_ab() -> Result<()> {
    let env = Env::new("nginx-ab").await?;
    let canary = env
        .canary(json!({"interval": "1m", "threshold": 2, "iterations": 2, "match": [{"headers": {"x-canary": {"exact": "insider"}}}]}))
        .await?;
    let router = NginxRouter::new(P);
    let open = WriteGate::open();
    user_ingress(&env).await?;
    let existing: Ingress = serde_json::from_value(json!({
        "metadata": {
            "name": "podinfo-canary",
            "labels": {"team": "web"},
            "annotations": {"team.example.com/owner": "web", "custom.ingress.kubernetes.io/canary-weight": "30"},
        },
        "spec": {"rules": [{"host": "old.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}},
        ]}}]},
    }))?;
    env.ingresses().create(&PostParams::default(), &existing).await?;
    poll("takeover", DEADLINE, || async {
        router.reconcile(&env.cx(&canary, &open)).await?;
        let live = env.ingresses().get("podinfo-canary").await?;
        let spec = serde_json::to_value(&live.spec)?;
        Ok(if spec["rules"][0]["host"] == "app.example.com" {
            Ok(live)
        } else {
            Err(spec)
        })
    })
    .await
    .and_then(|live| {
        let spec = serde_json::to_value(&live.spec)?;
        ensure!(spec["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "podinfo-canary");
        ensure!(
            live.labels().get("team").map(String::as_str) == Some("web"),
            "{:?}",
            live.labels()
        );
        ensure!(
            live.annotations()
                .get("team.example.com/owner")
                .map(String::as_str)
                == Some("web")
        );
        Ok(())
    })?;
    env.wait_for_routes(&router, &canary, weights(30)).await?;

    // A/B: the header annotations and no stale canary-weight (Flagger's value filter kept it).
    router.set_routes(&env.cx(&canary, &open), weights(100)).await?;
    env.wait_for_routes(&router, &canary, weights(100)).await?;
    let live = env.ingresses().get("podinfo-canary").await?;
    let a = live.annotations();
    ensure!(
        a.get(&format!("{P}/canary-by-header")).map(String::as_str) == Some("x-canary"),
        "{a:?}"
    );
    ensure!(
        a.get(&format!("{P}/canary-by-header-value")).map(String::as_str) == Some("insider"),
        "{a:?}"
    );
    ensure!(
        a.get(&format!("{P}/canary")).map(String::as_str) == Some("true"),
        "{a:?}"
    );
    ensure!(
        !a.contains_key(&format!("{P}/canary-weight")),
        "stale weight kept: {a:?}"
    );
    ensure!(
        a.get("team.example.com/owner").map(String::as_str) == Some("web"),
        "{a:?}"
    );

    // Promotion puts the weight shape back.
    router
        .set_routes(&env.cx(&canary, &open), Routes::PRIMARY)
        .await?;
    env.wait_for_routes(&router, &canary, Routes::PRIMARY).await?;
    let a = env.ingresses().get("podinfo-canary").await?.annotations().clone();
    ensure!(!a.contains_key(&format!("{P}/canary-by-header")), "{a:?}");
    ensure!(
        a.get(&format!("{P}/canary-weight")).map(String::as_str) == Some("0"),
        "{a:?}"
    );
    Ok(())
}
