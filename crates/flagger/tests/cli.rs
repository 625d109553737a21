//! The `flagger` command line, run as a process.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

const FLAGGER: &str = env!("CARGO_BIN_EXE_flagger");

fn flagger(args: &[&str]) -> Output {
    Command::new(FLAGGER)
        .args(args)
        .env_remove("SLACK_URL")
        .env_remove("MSTEAMS_URL")
        .env_remove("EVENT_WEBHOOK_URL")
        .output()
        .expect("run flagger")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn go_style_flags_before_crds_print_three_crds() {
    let out = flagger(&[
        "-mesh-provider=linkerd",
        "-metrics-server=http://prom:9090",
        "crds",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&stdout(&out)).expect("CRD YAML parses");
    let names: Vec<&str> = docs
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "canaries.flagger.app",
            "metrictemplates.flagger.app",
            "alertproviders.flagger.app"
        ]
    );
    assert!(docs.iter().all(|d| d["kind"] == "CustomResourceDefinition"));
}

#[test]
fn crds_output_is_what_flagger_api_generates() {
    let out = flagger(&["crds"]);
    assert_eq!(stdout(&out), flagger_api::crds_yaml());
}

#[test]
fn flags_after_the_subcommand_and_gnu_spelling_work() {
    let out = flagger(&[
        "crds",
        "--mesh-provider",
        "gatewayapi:v1",
        "-enable-leader-election",
        "-v=2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn unknown_flag_fails_naming_it() {
    let out = flagger(&["-mesh-provider=istio", "-metrics-servr=http://prom:9090", "crds"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).starts_with("error: flag provided but not defined: -metrics-servr=http://prom:9090\n"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_flag_values_fail_with_usage_status() {
    let out = flagger(&["-mesh-provider=gatewayapi", "crds"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown provider \"gatewayapi\""),
        "{}",
        stderr(&out)
    );
    let out = flagger(&["-enable-leader-election=yes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a boolean"), "{}", stderr(&out));
}

#[test]
fn version_flag_prints_the_version() {
    for flag in ["-version", "--version"] {
        let out = flagger(&[flag]);
        assert_eq!(out.status.code(), Some(0));
        assert!(
            stdout(&out).starts_with(&format!(
                "Flagger version {} revision ",
                env!("CARGO_PKG_VERSION")
            )),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn help_is_written_for_users() {
    let out = flagger(&["-h"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for needle in [
        "--mesh-provider",
        "--metrics-server",
        "validate",
        "crds",
        "SLACK_URL",
        "klog",
    ] {
        assert!(help.contains(needle), "help lacks {needle}:\n{help}");
    }
    let out = flagger(&["validate", "--help"]);
    assert!(
        stdout(&out).contains("FILE:DOC_INDEX: KIND/NAME: FIELD.PATH: MESSAGE"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn run_without_a_usable_kubeconfig_exits_1_with_the_reason() {
    // No subcommand means run, as with Flagger's chart.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let out = flagger(&[
        "-mesh-provider=linkerd",
        "-kubeconfig=/nonexistent/kubeconfig",
        &format!("-port={port}"),
        "-zap-encoding=console",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let log = format!("{}{}", stdout(&out), stderr(&out));
    assert!(log.contains("Starting flagger-rs"), "{log}");
    assert!(log.contains("Error building kubeconfig"), "{log}");
    assert!(log.contains("/nonexistent/kubeconfig"), "{log}");
}

#[test]
fn run_reports_every_configuration_problem() {
    let out = flagger(&[
        "run",
        "-log-level=verbose",
        "-port=http",
        "-threadiness=0",
        "-zap-encoding=logfmt",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("error: invalid configuration:\n"), "{err}");
    for needle in ["-log-level", "-port", "-threadiness", "-zap-encoding"] {
        assert!(
            err.contains(&format!("  {needle}: ")),
            "{needle} missing in {err}"
        );
    }
}

#[test]
fn environment_wins_over_flags() {
    let out = Command::new(FLAGGER)
        .args([
            "-slack-url=https://hooks.slack.com/services/x",
            "-slack-channel=general",
        ])
        .env("SLACK_URL", "not a url")
        .env_remove("MSTEAMS_URL")
        .env_remove("EVENT_WEBHOOK_URL")
        .output()
        .expect("run flagger");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("-slack-url (or SLACK_URL): \"not a url\""),
        "{}",
        stderr(&out)
    );
}

const VALID_CANARY: &str = "\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis: {interval: 1m, threshold: 5, stepWeight: 10}
";

fn validate_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(FLAGGER)
        .arg("validate")
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flagger");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

#[test]
fn validate_reads_standard_input() {
    let out = validate_stdin(&[], VALID_CANARY);
    assert_eq!(
        (out.status.code(), stdout(&out)),
        (Some(0), String::new()),
        "{}",
        stderr(&out)
    );
    let out = validate_stdin(&[], &VALID_CANARY.replace("stepWeight: 10", "stepWeight: 0"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "-:0: Canary/podinfo: spec.analysis.stepWeight: must be between 1 and 100, got 0; \
         with a step of 0 the canary never advances\n"
    );
}

#[test]
fn validate_uses_the_mesh_provider_and_namespace_flags() {
    // A canary without spec.provider gets -mesh-provider.
    let out = validate_stdin(&["-mesh-provider=apisix"], VALID_CANARY);
    assert_eq!(
        stdout(&out),
        "-:0: Canary/podinfo: spec.routeRef: required by the apisix provider\n"
    );
    // A manifest without a namespace lives in -namespace.
    let with_ref = VALID_CANARY.replace(
        "  analysis: {",
        "  upstreamRef: {apiVersion: gloo.solo.io/v1, kind: Upstream, name: up, namespace: apps}\n  analysis: {",
    );
    let out = validate_stdin(&["-no-cross-namespace-refs", "-namespace=apps"], &with_ref);
    assert_eq!(stdout(&out), "", "{}", stderr(&out));
    let out = validate_stdin(&["-no-cross-namespace-refs"], &with_ref);
    assert!(
        stdout(&out).contains("spec.upstreamRef.namespace: Gloo upstream apps/up"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn validate_skips_other_kinds_silently() {
    let input = format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n---\n{VALID_CANARY}");
    let out = validate_stdin(&[], &input);
    assert_eq!(
        (out.status.code(), stdout(&out), stderr(&out)),
        (Some(0), String::new(), String::new())
    );
}

#[test]
fn validate_reports_unreadable_files_with_status_2() {
    let out = flagger(&["validate", "/nonexistent/canary.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: /nonexistent/canary.yaml: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn validate_needs_a_file() {
    let out = flagger(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("FILE"), "{}", stderr(&out));
}
