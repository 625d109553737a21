//! Snapshots of what the NGINX, Skipper and Contour routers write (pure builders, no cluster): the objects
//! at initialisation, at the 25% and 50% steps, and the A/B shape (NGINX, Contour).
#![allow(clippy::unwrap_used)]

use flagger_api::Canary;
use flagger_controller::router::contour::ContourRouter;
use flagger_controller::router::nginx::NginxRouter;
use flagger_controller::router::skipper::SkipperRouter;
use flagger_core::machine::Routes;
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::{Value, json};

const UID: &str = "5d1b4c4e-0000-4000-8000-000000000002";

fn canary(provider: &str, analysis: Value) -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": UID},
        "spec": {
            "provider": provider,
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"},
            "service": {"port": 9898, "timeout": "15s",
                        "retries": {"attempts": 3, "perTryTimeout": "5s", "retryOn": "5xx"},
                        "apex": {"labels": {"tier": "web"}, "annotations": {"team.example.com/owner": "web"}}},
            "analysis": analysis,
        },
    }))
    .unwrap()
}

fn progressive(provider: &str) -> Canary {
    canary(
        provider,
        json!({"interval": "15s", "threshold": 2, "maxWeight": 50, "stepWeight": 25}),
    )
}

fn ab(provider: &str) -> Canary {
    canary(
        provider,
        json!({"interval": "15s", "threshold": 2, "iterations": 2, "match": [
            {"headers": {"x-canary": {"exact": "insider"}}},
            {"headers": {"cookie": {"exact": "canary"}}},
        ]}),
    )
}

fn weights(canary: i32) -> Routes {
    Routes {
        primary: 100 - canary,
        canary,
        mirrored: false,
    }
}

fn user_ingress() -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "podinfo", "namespace": "test", "labels": {"app": "podinfo"},
            "annotations": {
                "kubernetes.io/ingress.class": "nginx",
                "zalando.org/skipper-predicate": "Method(\"GET\")",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
        },
        "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "podinfo", "port": {"number": 9898}}}},
        ]}}]},
    }))
    .unwrap()
}

#[test]
fn nginx() {
    let router = NginxRouter::default();
    let c = progressive("nginx");
    let init = router.desired(&c, &user_ingress()).unwrap();
    insta::assert_yaml_snapshot!("nginx_init", init);
    let start = serde_json::from_value(init["metadata"]["annotations"].clone()).unwrap();
    let at25 = router.routes_annotations(&c, &start, weights(25));
    insta::assert_yaml_snapshot!("nginx_step_25_annotations", at25);
    let at50 = router.routes_annotations(&c, &at25, weights(50));
    insta::assert_yaml_snapshot!("nginx_step_50_annotations", at50);
    let a = ab("nginx");
    let ab_annotations = router.routes_annotations(&a, &at50, weights(100));
    insta::assert_yaml_snapshot!("nginx_ab_annotations", ab_annotations);
}

#[test]
fn skipper() {
    let c = progressive("skipper");
    let init = SkipperRouter::desired(&c, &user_ingress()).unwrap();
    insta::assert_yaml_snapshot!("skipper_init", init);
    let obj: DynamicObject = serde_json::from_value(init).unwrap();
    let at25 = SkipperRouter::weighted_annotations(&c, obj.annotations(), weights(25), true);
    insta::assert_yaml_snapshot!("skipper_step_25_annotations", at25);
    let at50 = SkipperRouter::weighted_annotations(&c, &at25, weights(50), true);
    insta::assert_yaml_snapshot!("skipper_step_50_annotations", at50);
    let promoted = SkipperRouter::weighted_annotations(&c, &at50, Routes::PRIMARY, true);
    insta::assert_yaml_snapshot!("skipper_promoted_annotations", promoted);
}

#[test]
fn contour() {
    let router = ContourRouter::new("contour");
    let c = progressive("contour");
    insta::assert_yaml_snapshot!("contour_init", router.desired(&c, Routes::PRIMARY, None));
    insta::assert_yaml_snapshot!("contour_step_25", router.desired_spec(&c, weights(25)));
    insta::assert_yaml_snapshot!("contour_step_50", router.desired_spec(&c, weights(50)));
    insta::assert_yaml_snapshot!("contour_ab", router.desired_spec(&ab("contour"), weights(100)));
}
