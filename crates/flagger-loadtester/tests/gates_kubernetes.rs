//! The ConfigMap gate store on the local control plane: round trips, a restart of the load tester, and
//! replicas writing at the same time.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use flagger_loadtester::GateStore;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::json;

const CM: &str = "flagger-loadtester-gates";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_survive_a_restart() {
    let ns = testkit::TestNamespace::new("lt-gates").await.unwrap();
    let store = || GateStore::kubernetes(ns.client.clone(), &ns.name, CM);
    let body = json!({"name": "podinfo", "namespace": "test"});

    let lt = start_with(store()).await;
    // Nothing stored yet: closed, and a check does not create the ConfigMap.
    assert_eq!(
        post(&lt.url("/gate/check"), &body).await,
        (403, "Forbidden".to_owned())
    );
    let api = ns.api::<ConfigMap>();
    assert!(api.get_opt(CM).await.unwrap().is_none());
    assert_eq!(post(&lt.url("/gate/open"), &body).await, (202, String::new()));
    assert_eq!(
        post(&lt.url("/gate/check"), &body).await,
        (200, "Approved".to_owned())
    );
    assert_eq!(post(&lt.url("/rollback/open"), &body).await.0, 202);
    assert_eq!(post(&lt.url("/rollback/close"), &body).await.0, 202);
    let cm = api.get(CM).await.unwrap();
    let data = cm.data.unwrap();
    assert_eq!(data.get("podinfo.test").map(String::as_str), Some("true"));
    assert_eq!(
        data.get("rollback.podinfo.test").map(String::as_str),
        Some("false")
    );
    assert_eq!(
        cm.metadata
            .labels
            .unwrap()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("flagger-loadtester")
    );
    lt.shutdown().await.unwrap();

    // A new load tester (new process state, same ConfigMap) sees the open gate.
    let lt = start_with(store()).await;
    assert_eq!(
        post(&lt.url("/gate/check"), &body).await,
        (200, "Approved".to_owned())
    );
    assert_eq!(
        post(&lt.url("/rollback/check"), &body).await,
        (403, "Forbidden".to_owned())
    );
    assert_eq!(post(&lt.url("/gate/close"), &body).await.0, 202);
    assert_eq!(post(&lt.url("/gate/check"), &body).await.0, 403);
    lt.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_agree_under_concurrent_writes() {
    let ns = testkit::TestNamespace::new("lt-replicas").await.unwrap();
    let a = start_with(GateStore::kubernetes(ns.client.clone(), &ns.name, CM)).await;
    let b = start_with(GateStore::kubernetes(ns.client.clone(), &ns.name, CM)).await;
    // 2 replicas x 10 canaries opened at the same time: every write conflicts with others and is retried.
    let mut writes = Vec::new();
    for i in 0..10 {
        for lt in [&a, &b] {
            let url = lt.url("/gate/open");
            let body =
                json!({"name": format!("app{i}"), "namespace": if std::ptr::eq(lt, &a) { "a" } else { "b" }});
            writes.push(tokio::spawn(async move { post(&url, &body).await }));
        }
    }
    for w in writes {
        assert_eq!(w.await.unwrap().0, 202);
    }
    let data = ns.api::<ConfigMap>().get(CM).await.unwrap().data.unwrap();
    assert_eq!(data.len(), 20, "{data:?}");
    assert!(data.values().all(|v| v == "true"), "{data:?}");
    // Each replica answers for gates the other one opened.
    for i in 0..10 {
        let from_a = json!({"name": format!("app{i}"), "namespace": "a"});
        let from_b = json!({"name": format!("app{i}"), "namespace": "b"});
        assert_eq!(post(&b.url("/gate/check"), &from_a).await.0, 200);
        assert_eq!(post(&a.url("/gate/check"), &from_b).await.0, 200);
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
