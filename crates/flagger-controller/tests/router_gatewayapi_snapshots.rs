//! Snapshots of the HTTPRoutes the Gateway API router writes (pure builders, no cluster): at
//! initialisation, at the 25% and 50% steps, the A/B shape, mirrored blue/green, session affinity during
//! and after a run, with every service option, and v1beta1.
#![allow(clippy::unwrap_used)]

use flagger_api::Canary;
use flagger_controller::router::gatewayapi::{
    Carried, Cookies, RouteVersion, Shape, desired_object, flagger_rules,
};
use flagger_core::machine::Routes;
use serde_json::{Value, json};

const UID: &str = "5d1b4c4e-0000-4000-8000-000000000001";

fn canary(service: Value, analysis: Value) -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": UID},
        "spec": {
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": service,
            "analysis": analysis,
        },
    }))
    .unwrap()
}

fn service() -> Value {
    json!({
        "port": 9898,
        "hosts": ["app.example.com"],
        "gatewayRefs": [{"name": "gateway", "namespace": "istio-ingress"}],
    })
}

fn progressive() -> Canary {
    canary(
        service(),
        json!({"interval": "15s", "threshold": 2, "maxWeight": 50, "stepWeight": 25}),
    )
}

fn weights(primary: i32, canary: i32) -> Routes {
    Routes {
        primary,
        canary,
        mirrored: false,
    }
}

/// The route as created (owner reference, no original configuration).
fn route(version: RouteVersion, canary: &Canary, shape: Shape<'_>) -> Value {
    let carried = Carried {
        owner_reference: Some(json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo", "uid": UID,
            "controller": true, "blockOwnerDeletion": true,
        })),
        original_configuration: None,
    };
    desired_object(
        version,
        canary,
        flagger_rules(version, canary, shape).unwrap(),
        &carried,
    )
}

fn weighted<'a>(routes: Routes, cookies: &'a Cookies) -> Shape<'a> {
    Shape::Weighted { routes, cookies }
}

macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({sort_maps => true}, {
            insta::assert_yaml_snapshot!($name, $value);
        })
    };
}

#[test]
fn v1_init_and_weight_steps() {
    let c = progressive();
    let none = Cookies::default();
    snapshot!("v1_init", route(RouteVersion::V1, &c, Shape::Initial));
    snapshot!(
        "v1_step_25",
        route(RouteVersion::V1, &c, weighted(weights(75, 25), &none))["spec"]
    );
    snapshot!(
        "v1_step_50",
        route(RouteVersion::V1, &c, weighted(weights(50, 50), &none))["spec"]
    );
}

#[test]
fn v1_every_service_option() {
    let mut svc = service();
    let options = json!({
        "name": "frontend",
        "match": [{"uri": {"prefix": "/api"}, "method": {"exact": "GET"}}],
        "timeout": "30s",
        "backendTimeout": "10s",
        "headers": {
            "request": {"add": {"x-b": "2", "x-a": "1"}, "set": {"x-s": "s"}, "remove": ["x-r"]},
            "response": {"set": {"x-frame-options": "DENY"}},
        },
        "rewrite": {"uri": "/v2", "authority": "internal.example.com", "type": "ReplacePrefixMatch"},
        "mirror": [{"backendRef": {"name": "shadow", "port": 8080}}],
        "corsPolicy": {"allowOrigin": ["https://app.example.com"], "allowMethods": ["GET", "POST"],
                       "allowHeaders": ["x-h"], "exposeHeaders": ["x-e"], "maxAge": "24h",
                       "allowCredentials": true},
        "apex": {"labels": {"team": "web"}, "annotations": {"owner": "web"}},
    });
    for (k, v) in options.as_object().unwrap() {
        svc[k] = v.clone();
    }
    let c = canary(svc, json!({"interval": "15s", "threshold": 2, "stepWeight": 25}));
    snapshot!("v1_service_options", route(RouteVersion::V1, &c, Shape::Initial));
    // v1beta1 has no timeouts and no CORS.
    snapshot!(
        "v1beta1_service_options",
        route(RouteVersion::V1beta1, &c, Shape::Initial)["spec"]
    );
}

#[test]
fn v1_ab_header_cookie_and_query() {
    let c = canary(
        service(),
        json!({"interval": "15s", "threshold": 2, "iterations": 10, "match": [
            {"headers": {"x-canary": {"exact": "insider"}}},
            {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
            {"queryParams": {"canary": {"exact": "true"}}},
        ]}),
    );
    let none = Cookies::default();
    snapshot!("v1_ab_init", route(RouteVersion::V1, &c, Shape::Initial)["spec"]);
    snapshot!(
        "v1_ab_analysis",
        route(RouteVersion::V1, &c, weighted(weights(0, 100), &none))["spec"]
    );
}

#[test]
fn v1_mirrored_blue_green() {
    let c = canary(
        service(),
        json!({"interval": "15s", "threshold": 2, "iterations": 5, "mirror": true}),
    );
    let none = Cookies::default();
    snapshot!(
        "v1_bg_mirrored",
        route(
            RouteVersion::V1,
            &c,
            weighted(
                Routes {
                    primary: 100,
                    canary: 0,
                    mirrored: true
                },
                &none
            )
        )["spec"]
    );
}

#[test]
fn session_affinity_during_and_after_a_run() {
    let c = canary(
        service(),
        json!({"interval": "15s", "threshold": 2, "maxWeight": 50, "stepWeight": 25,
               "sessionAffinity": {"cookieName": "flagger-cookie", "primaryCookieName": "primary-cookie",
                                   "maxAge": 300, "domain": "example.com", "path": "/", "sameSite": "Strict",
                                   "secure": true, "httpOnly": true}}),
    );
    let during = Cookies {
        canary: "flagger-cookie=abcdefghij".into(),
        primary: "primary-cookie=klmnopqrst".into(),
        previous: None,
    };
    snapshot!(
        "v1_session_affinity_step_25",
        route(RouteVersion::V1, &c, weighted(weights(75, 25), &during))["spec"]
    );
    let after = Cookies {
        previous: Some("flagger-cookie=abcdefghij".into()),
        ..during.clone()
    };
    snapshot!(
        "v1_session_affinity_promoted",
        route(RouteVersion::V1, &c, weighted(Routes::PRIMARY, &after))["spec"]
    );
    snapshot!(
        "v1beta1_session_affinity_step_25",
        route(RouteVersion::V1beta1, &c, weighted(weights(75, 25), &during))["spec"]
    );
}

#[test]
fn v1beta1_init_and_step() {
    let c = progressive();
    let none = Cookies::default();
    snapshot!("v1beta1_init", route(RouteVersion::V1beta1, &c, Shape::Initial));
    snapshot!(
        "v1beta1_step_50",
        route(RouteVersion::V1beta1, &c, weighted(weights(50, 50), &none))["spec"]
    );
}
