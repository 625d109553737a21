//! The HTTP API of an in-process load tester: every endpoint, the memory gate store, the task types that
//! need no external service, de-duplication, validation, timeouts and the built-in hey.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use flagger_loadtester::{Config, LoadTester};
use serde_json::json;

#[tokio::test]
async fn fixed_endpoints() {
    let lt = start().await;
    assert_eq!(get(&lt.url("/healthz")).await, (200, "OK".to_owned()));
    assert_eq!(get(&lt.url("/gate/approve")).await, (200, "OK".to_owned()));
    assert_eq!(
        post(&lt.url("/gate/approve"), &json!({})).await,
        (200, "OK".to_owned())
    );
    assert_eq!(get(&lt.url("/gate/halt")).await, (403, "Forbidden".to_owned()));
    assert_eq!(
        post(&lt.url("/gate/halt"), &json!({})).await,
        (403, "Forbidden".to_owned())
    );
    let (status, metrics) = get(&lt.url("/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("# TYPE flagger_loadtester_tasks_running gauge"),
        "{metrics}"
    );
    assert!(metrics.contains("process_resident_memory_bytes"), "{metrics}");
    lt.shutdown().await.unwrap();
}

#[tokio::test]
async fn gates_and_rollback_gates_round_trip_in_memory() {
    let lt = start().await;
    let body = json!({"name": "podinfo", "namespace": "test"});
    let other = json!({"name": "podinfo", "namespace": "other"});
    // A gate never opened is closed.
    assert_eq!(
        post(&lt.url("/gate/check"), &body).await,
        (403, "Forbidden".to_owned())
    );
    assert_eq!(post(&lt.url("/gate/open"), &body).await, (202, String::new()));
    assert_eq!(
        post(&lt.url("/gate/check"), &body).await,
        (200, "Approved".to_owned())
    );
    // Gates are per canary, and the rollback gate is separate.
    assert_eq!(post(&lt.url("/gate/check"), &other).await.0, 403);
    assert_eq!(
        post(&lt.url("/rollback/check"), &body).await,
        (403, "Forbidden".to_owned())
    );
    assert_eq!(post(&lt.url("/gate/close"), &body).await, (202, String::new()));
    assert_eq!(post(&lt.url("/gate/check"), &body).await.0, 403);

    assert_eq!(post(&lt.url("/rollback/open"), &body).await, (202, String::new()));
    assert_eq!(
        post(&lt.url("/rollback/check"), &body).await,
        (200, "Approved".to_owned())
    );
    assert_eq!(post(&lt.url("/gate/check"), &body).await.0, 403);
    assert_eq!(
        post(&lt.url("/rollback/close"), &body).await,
        (202, String::new())
    );
    assert_eq!(post(&lt.url("/rollback/check"), &body).await.0, 403);

    // The operator's full payload works as well as the documented short one.
    assert_eq!(
        post(&lt.url("/gate/open"), &payload("test", json!({}))).await.0,
        202
    );
    assert_eq!(
        post(&lt.url("/gate/check"), &payload("test", json!({"a": "b"})))
            .await
            .0,
        200
    );
    assert_eq!(
        metric(
            &lt,
            r#"flagger_loadtester_gate_checks_total{gate="gate",approved="true"}"#
        )
        .await,
        2.0
    );
    assert_eq!(
        metric(
            &lt,
            r#"flagger_loadtester_gate_checks_total{gate="rollback",approved="false"}"#
        )
        .await,
        2.0
    );

    // Every body endpoint refuses a body that is not JSON.
    for path in [
        "/gate/check",
        "/gate/open",
        "/gate/close",
        "/rollback/check",
        "/rollback/open",
        "/rollback/close",
        "/",
    ] {
        let (status, text) = post_raw(&lt.url(path), "{not json").await;
        assert_eq!(status, 400, "{path}");
        assert!(
            text.starts_with("decoding the request body failed: "),
            "{path}: {text}"
        );
    }
    lt.shutdown().await.unwrap();
}

#[tokio::test]
async fn namespace_regexp_restricts_every_body_endpoint() {
    let mut config = Config::new(([127, 0, 0, 1], 0).into());
    config.namespace_regexp = Some(regex::Regex::new("^team-").unwrap());
    let lt = LoadTester::start(config).await.unwrap();
    let denied =
        json!({"name": "podinfo", "namespace": "other", "metadata": {"type": "bash", "cmd": "true"}});
    for path in [
        "/gate/check",
        "/gate/open",
        "/gate/close",
        "/rollback/check",
        "/rollback/open",
        "/",
    ] {
        assert_eq!(
            post(&lt.url(path), &denied).await,
            (403, "Forbidden".to_owned()),
            "{path}"
        );
    }
    let allowed =
        json!({"name": "podinfo", "namespace": "team-a", "metadata": {"type": "bash", "cmd": "true"}});
    assert_eq!(post(&lt.url("/gate/open"), &allowed).await.0, 202);
    assert_eq!(post(&lt.url("/gate/check"), &allowed).await.0, 200);
    assert_eq!(post(&lt.url("/"), &allowed).await, (200, String::new()));
    lt.shutdown().await.unwrap();
}

#[tokio::test]
async fn bash_exit_codes_and_output() {
    let lt = start().await;
    let url = lt.url("/");
    let ok = payload(
        "test",
        json!({"type": "bash", "cmd": "echo hello; echo to-stderr >&2"}),
    );
    assert_eq!(post(&url, &ok).await, (200, String::new()));
    let ok = payload(
        "test",
        json!({"type": "bash", "cmd": "echo hello; echo to-stderr >&2", "returnCmdOutput": "true"}),
    );
    assert_eq!(post(&url, &ok).await, (200, "hello\nto-stderr\n".to_owned()));
    // bash, not sh: [[ ]] works.
    let bashism = payload(
        "test",
        json!({"type": "bash", "cmd": "[[ 1 == 1 ]] && echo yes", "returnCmdOutput": "true"}),
    );
    assert_eq!(post(&url, &bashism).await, (200, "yes\n".to_owned()));
    let failing = payload(
        "test",
        json!({"type": "bash", "cmd": "echo oops; exit 3", "returnCmdOutput": "true"}),
    );
    assert_eq!(
        post(&url, &failing).await,
        (
            500,
            "command echo oops; exit 3 failed: oops\n: exit status 3".to_owned()
        )
    );
    // returnCmdOutput does not hide errors, and its absence does not either.
    let failing = payload("test", json!({"type": "bash", "cmd": "exit 1"}));
    assert_eq!(
        post(&url, &failing).await,
        (500, "command exit 1 failed: : exit status 1".to_owned())
    );
    assert_eq!(
        metric(&lt, r#"flagger_loadtester_tasks_total{type="bash",result="ok"}"#).await,
        3.0
    );
    assert_eq!(
        metric(
            &lt,
            r#"flagger_loadtester_tasks_total{type="bash",result="failed"}"#
        )
        .await,
        2.0
    );
    lt.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_requests_are_400_with_a_reason() {
    let lt = start().await;
    let url = lt.url("/");
    // Flagger's load tester panics here (nil task factory) and drops the connection.
    assert_eq!(
        post(&url, &payload("test", json!({"type": "foo", "cmd": "x"}))).await,
        (400, "unknown task type foo".to_owned())
    );
    assert_eq!(
        post(&url, &json!({"name": "podinfo", "namespace": "test"})).await,
        (400, "metadata not found in payload".to_owned())
    );
    assert_eq!(
        post(&url, &payload("test", json!({}))).await,
        (400, "metadata not found in payload".to_owned())
    );
    assert_eq!(
        post(&url, &payload("test", json!({"type": "cmd"}))).await,
        (400, "cmd not found in metadata".to_owned())
    );
    // Metadata values are strings in Flagger's API.
    assert_eq!(post(&url, &payload("test", json!({"cmd": 1}))).await.0, 400);
    assert_eq!(
        post(
            &url,
            &payload("test", json!({"cmd": "hey -k 1 http://127.0.0.1:1/"}))
        )
        .await,
        (400, "hey: flag provided but not defined: -k".to_owned())
    );
    assert_eq!(
        post(
            &url,
            &payload("test", json!({"cmd": "hey -n 1 -c 2 http://127.0.0.1:1/"}))
        )
        .await,
        (400, "hey: -n cannot be less than -c.".to_owned())
    );
    assert_eq!(
        post(
            &url,
            &payload("test", json!({"type": "ngrinder", "server": "http://x"}))
        )
        .await,
        (
            400,
            "server, clone, username and passwd are required metadata".to_owned()
        )
    );
    // Concord's validation errors are 500, as Flagger answers them.
    assert_eq!(
        post(&url, &payload("test", json!({"type": "concord"}))).await,
        (500, "`server` is required with type concord".to_owned())
    );
    let (status, text) = post(
        &url,
        &payload("test", json!({"type": "bash", "cmd": "true", "timeout": "soon"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.starts_with("invalid timeout soon"), "{text}");
    lt.shutdown().await.unwrap();
}

#[tokio::test]
async fn running_cmd_tasks_are_not_started_twice() {
    let lt = start().await;
    let dir = std::env::temp_dir().join(format!("lt-dedup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("runs");
    let _ = std::fs::remove_file(&file);
    // Long enough that the duplicate surely arrives while the first still runs, even on a loaded machine.
    let cmd = format!("echo run >> {}; sleep 4", file.display());
    let task = payload("test", json!({"cmd": cmd, "logCmdOutput": "true"}));
    assert_eq!(post(&lt.url("/"), &task).await, (202, String::new()));
    assert_eq!(post(&lt.url("/"), &task).await, (202, String::new()));
    // The same command for another canary is another task.
    let other = payload("other", json!({"cmd": cmd}));
    assert_eq!(post(&lt.url("/"), &other).await, (202, String::new()));
    wait_metric(
        &lt,
        r#"flagger_loadtester_tasks_total{type="cmd",result="ok"}"#,
        2.0,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        metric(
            &lt,
            r#"flagger_loadtester_tasks_total{type="cmd",result="skipped"}"#
        )
        .await,
        1.0
    );
    assert_eq!(metric(&lt, "flagger_loadtester_tasks_running").await, 0.0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "run\nrun\n");
    // Once finished, the same task runs again.
    assert_eq!(post(&lt.url("/"), &task).await.0, 202);
    wait_metric(
        &lt,
        r#"flagger_loadtester_tasks_total{type="cmd",result="ok"}"#,
        3.0,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "run\nrun\nrun\n");
    lt.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_task_timeout_kills_the_task() {
    let lt = start().await;
    let start = Instant::now();
    let task = payload(
        "test",
        json!({"type": "bash", "cmd": "echo begun; sleep 30", "timeout": "500ms"}),
    );
    let (status, text) = post(&lt.url("/"), &task).await;
    assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());
    assert_eq!(status, 500);
    assert_eq!(
        text,
        "command echo begun; sleep 30 failed: begun\n: signal: killed (timed out after 500ms)"
    );
    // A background task is bounded the same way.
    let task = payload("test", json!({"cmd": "sleep 30", "timeout": "300ms"}));
    assert_eq!(post(&lt.url("/"), &task).await.0, 202);
    wait_metric(
        &lt,
        r#"flagger_loadtester_tasks_total{type="cmd",result="failed"}"#,
        1.0,
        Duration::from_secs(30),
    )
    .await;
    lt.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_kills_background_tasks() {
    let lt = start().await;
    let task = payload("test", json!({"cmd": "sleep 60"}));
    assert_eq!(post(&lt.url("/"), &task).await.0, 202);
    wait_metric(
        &lt,
        "flagger_loadtester_tasks_running",
        1.0,
        Duration::from_secs(5),
    )
    .await;
    let start = Instant::now();
    lt.shutdown().await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
}

#[tokio::test]
async fn kubectl_task_runs_against_the_cluster() {
    let ns = testkit::TestNamespace::new("lt-kubectl").await.unwrap();
    let lt = start().await;
    // The test process's KUBECONFIG is inherited by kubectl.
    let task = payload(
        &ns.name,
        json!({"type": "kubectl", "cmd": format!("get namespace {} -o name", ns.name), "returnCmdOutput": "true"}),
    );
    assert_eq!(
        post(&lt.url("/"), &task).await,
        (200, format!("namespace/{}\n", ns.name))
    );
    let task = payload(
        &ns.name,
        json!({"type": "kubectl", "cmd": "get configmap no-such-cm"}),
    );
    let (status, text) = post(&lt.url("/"), &task).await;
    assert_eq!(status, 500);
    assert!(
        text.starts_with("command get configmap no-such-cm failed: ")
            && text.contains("NotFound")
            && text.ends_with(": exit status 1"),
        "{text}"
    );
    lt.shutdown().await.unwrap();
}
