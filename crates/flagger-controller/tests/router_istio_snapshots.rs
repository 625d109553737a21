//! Snapshots of the objects the Istio router writes (pure builders, no cluster): the VirtualService and
//! DestinationRules at initialisation, the 25% and 50% steps, the A/B shape (header and cookie matches
//! merged with the service match), a mirrored step, session affinity during and after a run, delegation,
//! TCP and every service option.
#![allow(clippy::unwrap_used)]

use flagger_api::Canary;
use flagger_controller::router::istio::{
    Carried, Cookies, Shape, desired_spec, destination_rule, virtual_service,
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
            "provider": "istio",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": service,
            "analysis": analysis,
        },
    }))
    .unwrap()
}

fn owner() -> Value {
    json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo", "uid": UID,
        "controller": true, "blockOwnerDeletion": true,
    })
}

fn service() -> Value {
    json!({
        "port": 9898,
        "hosts": ["app.example.com"],
        "gateways": ["istio-system/public-gateway"],
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

/// The VirtualService as created (owner reference, no original configuration).
fn vs(canary: &Canary, shape: Shape<'_>) -> Value {
    let carried = Carried {
        owner_reference: Some(owner()),
        original_configuration: None,
    };
    virtual_service(canary, desired_spec(canary, shape).unwrap(), &carried)
}

fn spec(canary: &Canary, routes: Routes, cookies: &Cookies) -> Value {
    desired_spec(canary, Shape::Weighted { routes, cookies }).unwrap()
}

macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({sort_maps => true}, {
            insta::assert_yaml_snapshot!($name, $value);
        })
    };
}

#[test]
fn init_and_weight_steps() {
    let c = progressive();
    let none = Cookies::default();
    snapshot!("istio_init_virtual_service", vs(&c, Shape::Initial));
    snapshot!(
        "istio_init_destination_rules",
        json!([
            destination_rule(&c, "podinfo-canary", Some(owner())),
            destination_rule(&c, "podinfo-primary", Some(owner())),
        ])
    );
    snapshot!("istio_step_25", spec(&c, weights(75, 25), &none));
    snapshot!("istio_step_50", spec(&c, weights(50, 50), &none));
}

#[test]
fn every_service_option() {
    let c = canary(
        json!({
            "name": "frontend",
            "port": 9898,
            "portDiscovery": true,
            "hosts": ["app.example.com", "frontend"],
            "gateways": ["istio-system/public-gateway", "mesh"],
            "match": [{"uri": {"prefix": "/api"}, "method": {"exact": "GET"}, "ignoreUriCase": true}],
            "rewrite": {"uri": "/v2", "authority": "internal.example.com", "type": "ReplacePrefixMatch"},
            "timeout": "30s",
            "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure"},
            "headers": {
                "request": {"add": {"x-b": "2", "x-a": "1"}, "set": {"x-s": "s"}, "remove": ["x-r"]},
                "response": {"set": {"x-frame-options": "DENY"}},
            },
            "corsPolicy": {"allowOrigin": ["https://app.example.com"], "allowMethods": ["GET", "POST"],
                           "allowHeaders": ["x-h"], "exposeHeaders": ["x-e"], "maxAge": "24h",
                           "allowCredentials": true},
            "trafficPolicy": {
                "loadBalancer": {"consistentHash": {"httpCookie": {"name": "user", "ttl": "0s"}}},
                "connectionPool": {"http": {"http1MaxPendingRequests": 100, "h2UpgradePolicy": "UPGRADE"}},
                "outlierDetection": {"consecutive5xxErrors": 5, "interval": "30s", "baseEjectionTime": "1m"},
                "tls": {"mode": "ISTIO_MUTUAL"},
            },
            "apex": {"labels": {"team": "web"}, "annotations": {"owner": "web"}},
        }),
        json!({"interval": "15s", "threshold": 2, "stepWeight": 25}),
    );
    snapshot!("istio_service_options", vs(&c, Shape::Initial));
    snapshot!(
        "istio_service_options_destination_rule",
        destination_rule(&c, "frontend-primary", Some(owner()))
    );
}

#[test]
fn ab_header_and_cookie_matches_merged_with_the_service_match() {
    let c = canary(
        json!({"port": 9898, "match": [{"uri": {"prefix": "/api"}}, {"uri": {"prefix": "/web"}}]}),
        json!({"interval": "15s", "threshold": 2, "iterations": 2, "match": [
            {"headers": {"x-canary": {"exact": "insider"}}},
            {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
        ]}),
    );
    snapshot!("istio_ab_init", vs(&c, Shape::Initial)["spec"]);
    snapshot!(
        "istio_ab_analysis",
        spec(&c, weights(0, 100), &Cookies::default())
    );
    // Without a service match the analysis matches are used as they are.
    let bare = canary(
        json!({"port": 9898}),
        json!({"interval": "15s", "iterations": 2, "match": [
            {"headers": {"x-canary": {"exact": "insider"}}},
            {"sourceLabels": {"app": "frontend"}},
        ]}),
    );
    snapshot!(
        "istio_ab_without_service_match",
        spec(&bare, weights(0, 100), &Cookies::default())
    );
}

#[test]
fn mirrored_step() {
    let c = canary(
        service(),
        json!({"interval": "15s", "threshold": 2, "stepWeight": 25, "mirror": true, "mirrorWeight": 50}),
    );
    let mirrored = Routes {
        primary: 100,
        canary: 0,
        mirrored: true,
    };
    snapshot!("istio_mirrored", spec(&c, mirrored, &Cookies::default()));
}

#[test]
fn session_affinity_during_and_after_a_run() {
    let c = canary(
        json!({"port": 9898, "match": [{"uri": {"prefix": "/"}}]}),
        json!({"interval": "30s", "threshold": 2, "stepWeight": 25, "sessionAffinity": {
            "cookieName": "flagger-cookie", "primaryCookieName": "primary-cookie", "maxAge": 300,
            "domain": "example.com", "httpOnly": true, "path": "/", "sameSite": "Strict", "secure": true,
        }}),
    );
    let run = Cookies {
        canary: "flagger-cookie=aBcDeFgHiJ".into(),
        primary: "primary-cookie=kLmNoPqRsT".into(),
        previous: None,
    };
    snapshot!("istio_session_affinity_step_25", spec(&c, weights(75, 25), &run));
    let finished = Cookies {
        previous: Some("flagger-cookie=aBcDeFgHiJ".into()),
        ..run
    };
    snapshot!(
        "istio_session_affinity_promoted",
        spec(&c, Routes::PRIMARY, &finished)
    );
}

#[test]
fn delegation_and_tcp() {
    let delegate = canary(
        json!({"port": 9898, "portDiscovery": true, "delegation": true}),
        json!({"interval": "15s", "stepWeight": 25}),
    );
    snapshot!("istio_delegation", vs(&delegate, Shape::Initial)["spec"]);
    let tcp = canary(
        json!({"port": 9898, "appProtocol": "TCP", "gateways": ["istio-system/tcp-gateway"], "portDiscovery": true,
               "match": [{"port": 9898}, {"port": 9899}]}),
        json!({"interval": "15s", "stepWeight": 25, "match": [{"headers": {"x": {"exact": "ignored"}}}], "mirror": true}),
    );
    snapshot!("istio_tcp_init", vs(&tcp, Shape::Initial)["spec"]);
    snapshot!(
        "istio_tcp_step_25",
        spec(
            &tcp,
            Routes {
                primary: 75,
                canary: 25,
                mirrored: true
            },
            &Cookies::default()
        )
    );
}
