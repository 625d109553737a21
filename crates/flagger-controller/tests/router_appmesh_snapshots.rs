//! Snapshots of the objects the App Mesh routers write (pure builders, no cluster): at initialisation, at the
//! 25% and 50% steps and the A/B shape, for `appmesh:v1beta2` and the legacy `appmesh` (v1beta1), plus every
//! service option.
#![allow(clippy::unwrap_used)]

use flagger_api::Canary;
use flagger_controller::router::appmesh::{
    AppMeshVersion, Desired, Kind, desired_objects, read_routes, routes_object_name, with_weights,
};
use flagger_core::machine::Routes;
use serde_json::{Value, json};

const UID: &str = "5d1b4c4e-0000-4000-8000-000000000001";

fn canary(provider: &str, service: Value, analysis: Value) -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": UID},
        "spec": {
            "provider": provider,
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": service,
            "analysis": analysis,
        },
    }))
    .unwrap()
}

fn progressive(version: AppMeshVersion) -> Canary {
    let (provider, service) = match version {
        AppMeshVersion::V1beta2 => ("appmesh:v1beta2", json!({"port": 9898})),
        AppMeshVersion::V1beta1 => ("appmesh", json!({"port": 9898, "meshName": "global"})),
    };
    canary(
        provider,
        service,
        json!({"interval": "15s", "threshold": 2, "maxWeight": 50, "stepWeight": 25}),
    )
}

fn ab(version: AppMeshVersion) -> Canary {
    let (provider, service) = match version {
        AppMeshVersion::V1beta2 => ("appmesh:v1beta2", json!({"port": 9898})),
        AppMeshVersion::V1beta1 => ("appmesh", json!({"port": 9898, "meshName": "global"})),
    };
    canary(
        provider,
        service,
        json!({
            "interval": "15s", "threshold": 2, "iterations": 10,
            "match": [
                {"headers": {"x-canary": {"exact": "insider"}, "cookie": {"regex": "^(.*?;)?(type=insider)(;.*)?$"}}},
                {"headers": {"user-agent": {"prefix": "Mozilla"}}},
            ],
        }),
    )
}

fn weights(primary: i32, canary: i32) -> Routes {
    Routes {
        primary,
        canary,
        mirrored: false,
    }
}

/// Every object as `(kind name, object)`, in the order the router writes them.
fn all(version: AppMeshVersion, canary: &Canary) -> Value {
    let objects: Vec<Value> = desired_objects(version, canary, "app")
        .unwrap()
        .into_iter()
        .map(
            |Desired {
                 object, create_only, ..
             }| json!({"createOnly": create_only, "object": object}),
        )
        .collect();
    Value::Array(objects)
}

/// The object holding the apex routes after `set_routes(routes)`.
fn at_step(version: AppMeshVersion, canary: &Canary, routes: Routes) -> Value {
    let name = routes_object_name(version, canary).unwrap();
    let objects = desired_objects(version, canary, "app").unwrap();
    let kind = match version {
        AppMeshVersion::V1beta2 => Kind::VirtualRouter,
        AppMeshVersion::V1beta1 => Kind::VirtualService,
    };
    let apex = objects.iter().find(|d| d.kind == kind && d.name == name).unwrap();
    let next = with_weights(version, canary, &apex.object, routes).unwrap();
    assert_eq!(read_routes(version, canary, &next).unwrap(), routes);
    next
}

#[test]
fn v1beta2_init() {
    insta::assert_yaml_snapshot!(
        "v1beta2_init",
        all(AppMeshVersion::V1beta2, &progressive(AppMeshVersion::V1beta2))
    );
}

#[test]
fn v1beta2_steps() {
    let c = progressive(AppMeshVersion::V1beta2);
    insta::assert_yaml_snapshot!(
        "v1beta2_step_25",
        at_step(AppMeshVersion::V1beta2, &c, weights(75, 25))
    );
    insta::assert_yaml_snapshot!(
        "v1beta2_step_50",
        at_step(AppMeshVersion::V1beta2, &c, weights(50, 50))
    );
}

#[test]
fn v1beta2_ab() {
    let c = ab(AppMeshVersion::V1beta2);
    insta::assert_yaml_snapshot!("v1beta2_ab_init", all(AppMeshVersion::V1beta2, &c));
    // During the iterations all matched traffic goes to the canary: route `<apex>-a` carries the weights.
    insta::assert_yaml_snapshot!(
        "v1beta2_ab_analysis",
        at_step(AppMeshVersion::V1beta2, &c, weights(0, 100))
    );
}

#[test]
fn v1beta2_service_options() {
    let mut c = canary(
        "appmesh:v1beta2",
        json!({
            "port": 80,
            "portName": "grpc-api",
            "targetPort": 9898,
            "timeout": "15s",
            "retries": {"attempts": 3, "perTryTimeout": "5s", "retryOn": "gateway-error,client-error,stream-error"},
            "match": [{"uri": {"prefix": "/api"}}],
            "hosts": ["podinfo.example.com", "app.example.com"],
            "backends": ["backend1", "arn:aws:appmesh:eu-west-1:123:mesh/global/virtualService/backend2"],
            "apex": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
        }),
        json!({"interval": "15s", "threshold": 2, "maxWeight": 50, "stepWeight": 25}),
    );
    c.metadata.annotations =
        Some([("appmesh.flagger.app/accesslog".to_owned(), "enabled".to_owned())].into());
    insta::assert_yaml_snapshot!("v1beta2_service_options", all(AppMeshVersion::V1beta2, &c));
}

#[test]
fn v1beta1_init() {
    insta::assert_yaml_snapshot!(
        "v1beta1_init",
        all(AppMeshVersion::V1beta1, &progressive(AppMeshVersion::V1beta1))
    );
}

#[test]
fn v1beta1_steps() {
    let c = progressive(AppMeshVersion::V1beta1);
    insta::assert_yaml_snapshot!(
        "v1beta1_step_25",
        at_step(AppMeshVersion::V1beta1, &c, weights(75, 25))
    );
    insta::assert_yaml_snapshot!(
        "v1beta1_step_50",
        at_step(AppMeshVersion::V1beta1, &c, weights(50, 50))
    );
}

#[test]
fn v1beta1_ab() {
    let c = ab(AppMeshVersion::V1beta1);
    insta::assert_yaml_snapshot!("v1beta1_ab_init", all(AppMeshVersion::V1beta1, &c));
}

#[test]
fn v1beta1_service_options() {
    let mut c = canary(
        "appmesh",
        json!({
            "port": 9898,
            "meshName": "global",
            "timeout": "15s",
            "retries": {"attempts": 0, "perTryTimeout": "not a duration"},
            "hosts": ["podinfo.example.com"],
            "backends": ["backend1.test"],
        }),
        json!({"interval": "15s", "threshold": 2, "maxWeight": 50, "stepWeight": 25}),
    );
    c.metadata.annotations =
        Some([("appmesh.flagger.app/accesslog".to_owned(), "enabled".to_owned())].into());
    insta::assert_yaml_snapshot!("v1beta1_service_options", all(AppMeshVersion::V1beta1, &c));
}
