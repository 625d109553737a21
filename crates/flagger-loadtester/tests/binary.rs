//! The `flagger-loadtester` binary as a process: flags, helm tasks against a stand-in `helm` on PATH,
//! the ConfigMap store across a process restart, and graceful SIGTERM.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_flagger-loadtester");

struct Process {
    child: Child,
    port: u16,
    log: Vec<String>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Process {
    /// Starts the binary with `args` (and `-port=0`), `path_prefix` put before `$PATH`, and waits for the
    /// "Starting load tester" log line to learn the port.
    #[allow(clippy::zombie_processes)] // the child is owned by `Process`, whose Drop kills and waits for it
    fn start(args: &[&str], path_prefix: Option<&Path>) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("-port=0")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(dir) = path_prefix {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", dir.display()));
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut log = Vec::new();
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|e| panic!("no start line ({e}); log so far: {log:#?}"));
            let parsed: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            log.push(line);
            if let Some(port) = parsed["msg"]
                .as_str()
                .and_then(|m| m.strip_prefix("Starting load tester v"))
                .and_then(|m| m.rsplit(' ').next())
            {
                return Self {
                    child,
                    port: port.parse().unwrap(),
                    log,
                    lines,
                };
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sends SIGTERM and waits for the exit; returns the status and every log line.
    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.log.push(line);
        }
        (status, std::mem::take(&mut self.log))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `helm` that records its arguments one per line in `<dir>/argv` and fails when asked to.
fn stand_in_helm(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("helm");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}/argv\necho \"helm says hi\"\n[ \"$1\" = fail ] && {{ echo broken >&2; exit 4; }}\nexit 0\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_tasks_run_helm_with_the_command_split_on_whitespace() {
    let dir = temp_dir("helm");
    stand_in_helm(&dir);
    let lt = Process::start(&["-log-level=info"], Some(&dir));
    let argv = || std::fs::read_to_string(dir.join("argv")).unwrap();

    let task = payload(
        "test",
        json!({"type": "helm", "cmd": "test podinfo  --namespace test\t--timeout 2m", "returnCmdOutput": "true"}),
    );
    assert_eq!(
        post(&lt.url("/"), &task).await,
        (200, "helm says hi\n".to_owned())
    );
    assert_eq!(argv(), "test\npodinfo\n--namespace\ntest\n--timeout\n2m\n");

    // helmv3 is the same task; no shell is involved, so quotes are passed through as they are.
    let task = payload(
        "test",
        json!({"type": "helmv3", "cmd": "upgrade -i 'my app' $HOME"}),
    );
    assert_eq!(post(&lt.url("/"), &task).await, (200, String::new()));
    assert_eq!(argv(), "upgrade\n-i\n'my\napp'\n$HOME\n");

    let task = payload("test", json!({"type": "helm", "cmd": "fail now"}));
    assert_eq!(
        post(&lt.url("/"), &task).await,
        (
            500,
            "command fail now failed: helm says hi\nbroken\n: exit status 4".to_owned()
        )
    );
    assert_eq!(argv(), "fail\nnow\n");

    let (status, log) = lt.terminate();
    assert!(status.success(), "{status:?}\n{log:#?}");
    assert!(
        log.iter().any(|l| l
            .contains("\"msg\":\"running command helmv3 test podinfo  --namespace test\\t--timeout 2m\"")
            && l.contains("\"canary\":\"podinfo.test\"")),
        "{log:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_running_requests_then_exits() {
    let lt = Process::start(&[], None);
    assert_eq!(get(&lt.url("/healthz")).await, (200, "OK".to_owned()));
    // A blocking task in flight when SIGTERM arrives still gets its answer.
    let dir = std::env::temp_dir().join(format!("lt-sigterm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let started = dir.join("started");
    let cmd = format!("touch {}; sleep 1; echo done", started.display());
    let url = lt.url("/");
    let inflight = tokio::spawn(async move {
        post(
            &url,
            &payload(
                "test",
                json!({"type": "bash", "cmd": cmd, "returnCmdOutput": "true"}),
            ),
        )
        .await
    });
    // SIGTERM once the task runs (the request has been read).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !started.exists() {
        assert!(std::time::Instant::now() < deadline, "the task never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, log) = tokio::task::spawn_blocking(move || lt.terminate()).await.unwrap();
    assert_eq!(inflight.await.unwrap(), (200, "done\n".to_owned()));
    assert!(status.success(), "{status:?}");
    assert!(
        log.iter().any(|l| l.contains("\"msg\":\"HTTP server stopped\"")),
        "{log:#?}"
    );
    // Zap-shaped JSON lines.
    let first: serde_json::Value = serde_json::from_str(&log[0]).unwrap();
    assert!(
        first["level"].is_string() && first["ts"].is_string() && first["msg"].is_string(),
        "{first}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_gates_survive_a_process_restart() {
    let ns = testkit::TestNamespace::new("lt-restart").await.unwrap();
    let kubeconfig = std::env::var("KUBECONFIG").unwrap();
    let args = [
        "-gate-store=kubernetes",
        "-gate-store-namespace",
        ns.name.as_str(),
        "-gate-store-configmap=gates",
        "-kubeconfig",
        kubeconfig.as_str(),
    ];
    let body = json!({"name": "podinfo", "namespace": "test"});
    let first = Process::start(&args, None);
    assert_eq!(post(&first.url("/gate/check"), &body).await.0, 403);
    assert_eq!(post(&first.url("/gate/open"), &body).await.0, 202);
    let (status, _) = first.terminate();
    assert!(status.success());
    let second = Process::start(&args, None);
    assert_eq!(
        post(&second.url("/gate/check"), &body).await,
        (200, "Approved".to_owned())
    );
    let (status, log) = second.terminate();
    assert!(status.success(), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains(&format!("gates are stored in ConfigMap {}/gates", ns.name))),
        "{log:#?}"
    );
}

#[test]
fn command_line_errors_and_version() {
    let out = Command::new(BIN).arg("-nope").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("flag provided but not defined: -nope"));
    let out = Command::new(BIN).args(["-gate-store", "etcd"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN).arg("-version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("drop-in for Flagger's load tester 0.38.0"));
    // The built-in hey on its own: bad flags are hey's usage errors.
    let out = Command::new(BIN)
        .args(["hey", "-n", "1", "-c", "2", "http://127.0.0.1:1/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "hey: -n cannot be less than -c.\n"
    );
}
