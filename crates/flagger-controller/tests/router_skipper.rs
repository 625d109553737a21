//! The Skipper router against the local control plane: the canary Ingress with primary and canary paths,
//! backend weights and predicates read through the watch caches, takeover of a pre-existing canary Ingress,
//! and finalize deleting it.
//!
//! Needs the local control plane (`eval "$(cargo xtask testenv env)"`).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Result, bail, ensure};
use flagger_api::Canary;
use flagger_controller::cache::Caches;
use flagger_controller::gate::WriteGate;
use flagger_controller::router::skipper::{self, SkipperRouter};
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
                "provider": "skipper",
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "web"},
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

    async fn wait_for_routes(&self, router: &SkipperRouter, canary: &Canary, expected: Routes) -> Result<()> {
        let gate = WriteGate::open();
        poll(&format!("routes {expected:?}"), DEADLINE, || async {
            Ok(match router.get_routes(&self.cx(canary, &gate)).await {
                Ok(routes) if routes == expected => Ok(()),
                other => Err(format!("{other:?}")),
            })
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

#[tokio::test]
async fn skipper_lifecycle_takeover_and_finalize() -> Result<()> {
    let env = Env::new("skipper-router").await?;
    let canary = env
        .canary(json!({"interval": "1m", "threshold": 2, "maxWeight": 50, "stepWeight": 25}))
        .await?;
    let router = SkipperRouter;
    let (open, closed) = (WriteGate::open(), closed_gate());
    let ns = env.ns.name.clone();
    let user: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"app": "web"},
                     "annotations": {skipper::PREDICATE: "Method(\"GET\")", "team.example.com/owner": "web"}},
        "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}},
        ]}}]},
    }))?;
    env.ingresses().create(&PostParams::default(), &user).await?;

    match router.get_routes(&env.cx(&canary, &open)).await {
        Err(RouterError::Invalid(m)) => ensure!(
            m == format!(
                "ingress web-canary.{ns} get query error: ingresses.networking.k8s.io \"web-canary\" not found"
            ),
            "{m}"
        ),
        other => bail!("expected Flagger's get query error, got {other:?}"),
    }
    poll("user ingress cached", DEADLINE, || async {
        Ok(match router.reconcile(&env.cx(&canary, &closed)).await {
            Err(RouterError::NotLeader(_)) => Ok(()),
            other => Err(format!("{other:?}")),
        })
    })
    .await?;
    router.reconcile(&env.cx(&canary, &open)).await?;
    let created = env.ingresses().get("web-canary").await?;
    let spec = serde_json::to_value(&created.spec)?;
    let paths = &spec["rules"][0]["http"]["paths"];
    ensure!(
        paths[0]["backend"]["service"]["name"] == "podinfo-primary",
        "{spec}"
    );
    ensure!(
        paths[1]["backend"]["service"]["name"] == "podinfo-canary",
        "{spec}"
    );
    let a = created.annotations();
    ensure!(
        a.get(skipper::BACKEND_WEIGHTS).map(String::as_str)
            == Some(r#"{"podinfo-canary":0,"podinfo-primary":100}"#),
        "{a:?}"
    );
    ensure!(
        a.get(skipper::PREDICATE).map(String::as_str) == Some("Weight(100) && Method(\"GET\")"),
        "{a:?}"
    );
    ensure!(
        a.get("team.example.com/owner").map(String::as_str) == Some("web"),
        "{a:?}"
    );
    ensure!(created.owner_references()[0].uid == canary.uid().unwrap());
    env.wait_for_routes(&router, &canary, Routes::PRIMARY).await?;
    let rv = created.resource_version();
    router.reconcile(&env.cx(&canary, &open)).await?;
    ensure!(
        env.ingresses().get("web-canary").await?.resource_version() == rv,
        "no-op reconcile wrote"
    );

    match router.set_routes(&env.cx(&canary, &closed), weights(25)).await {
        Err(RouterError::NotLeader(_)) => {}
        other => bail!("a closed gate must refuse set_routes, got {other:?}"),
    }
    for w in [25, 50] {
        router.set_routes(&env.cx(&canary, &open), weights(w)).await?;
        env.wait_for_routes(&router, &canary, weights(w)).await?;
        let live = env.ingresses().get("web-canary").await?;
        ensure!(
            live.annotations().get(skipper::PREDICATE).map(String::as_str)
                == Some("Weight(100) && Method(\"GET\")")
        );
    }
    router
        .set_routes(&env.cx(&canary, &open), Routes::PRIMARY)
        .await?;
    env.wait_for_routes(&router, &canary, Routes::PRIMARY).await?;
    let live = env.ingresses().get("web-canary").await?;
    ensure!(
        live.annotations().get(skipper::PREDICATE).map(String::as_str) == Some("False() && Method(\"GET\")")
    );

    // Takeover: someone rewrote the canary Ingress's spec and added an annotation; reconcile puts the spec
    // back and the weights to 100/0 (as Flagger), keeping the foreign annotation and label.
    env.ingresses()
        .patch(
            "web-canary",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"labels": {"extra": "yes"}, "annotations": {"other.example.com/x": "1", skipper::BACKEND_WEIGHTS: r#"{"podinfo-canary":10,"podinfo-primary":90}"#}},
                "spec": {"rules": [{"host": "old.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}},
                ]}}]},
            })),
        )
        .await?;
    env.wait_for_routes(&router, &canary, weights(10)).await?;
    router.reconcile(&env.cx(&canary, &open)).await?;
    let live = env.ingresses().get("web-canary").await?;
    let spec = serde_json::to_value(&live.spec)?;
    ensure!(spec["rules"][0]["host"] == "app.example.com", "{spec}");
    let a = live.annotations();
    ensure!(
        a.get("other.example.com/x").map(String::as_str) == Some("1"),
        "{a:?}"
    );
    ensure!(
        a.get("kustomize.toolkit.fluxcd.io/reconcile").map(String::as_str) == Some("disabled"),
        "{a:?}"
    );
    ensure!(live.labels().get("extra").map(String::as_str) == Some("yes"));
    env.wait_for_routes(&router, &canary, Routes::PRIMARY).await?;

    // Finalize deletes the canary Ingress (gated), and is fine when it is gone.
    match router.finalize(&env.cx(&canary, &closed)).await {
        Err(RouterError::NotLeader(_)) => {}
        other => bail!("a closed gate must refuse finalize, got {other:?}"),
    }
    router.finalize(&env.cx(&canary, &open)).await?;
    poll("canary ingress deleted", DEADLINE, || async {
        Ok(match env.ingresses().get_opt("web-canary").await? {
            None => Ok(()),
            Some(i) => Err(i.metadata.deletion_timestamp),
        })
    })
    .await?;
    router.finalize(&env.cx(&canary, &open)).await?;
    ensure!(
        env.ingresses().get_opt("web").await?.is_some(),
        "the user's Ingress must stay"
    );
    Ok(())
}
