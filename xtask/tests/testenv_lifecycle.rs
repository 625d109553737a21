//! `cargo xtask testenv up|status|down` on a state directory of its own, beside any running environment.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn xtask(state: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("FLAGGER_TESTENV_STATE", state)
        .output()
        .expect("run xtask");
    assert!(
        out.status.success(),
        "xtask {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').and_then(|i| s.get(i + 2..i + 3)).map(|st| st != "Z"))
        .unwrap_or(false)
}

fn recorded_pids(state: &Path) -> Vec<(String, i32)> {
    let mut pids = Vec::new();
    let supervisor = fs::read_to_string(state.join("cluster/testenv.pid")).expect("supervisor pid");
    pids.push((
        "testenv".to_string(),
        supervisor
            .trim()
            .parse()
            .expect("recorded pid files are well formed"),
    ));
    for line in fs::read_to_string(state.join("cluster/pids"))
        .expect("recorded pid files are well formed")
        .lines()
    {
        let (name, pid) = line.split_once(' ').expect("recorded pid files are well formed");
        pids.push((
            name.to_string(),
            pid.trim().parse().expect("recorded pid files are well formed"),
        ));
    }
    for line in fs::read_to_string(state.join("prometheus/state"))
        .expect("recorded pid files are well formed")
        .lines()
    {
        if let Some(pid) = line.strip_prefix("pid=") {
            pids.push((
                "prometheus".to_string(),
                pid.trim().parse().expect("recorded pid files are well formed"),
            ));
        }
    }
    pids
}

#[test]
fn up_is_idempotent_and_down_leaves_no_process_behind() {
    let state: PathBuf = std::env::temp_dir().join(format!("xtask-lifecycle-{}", std::process::id()));
    let _ = fs::remove_dir_all(&state);

    let up = xtask(&state, &["testenv", "up", "--with-prometheus"]);
    let stdout = String::from_utf8_lossy(&up.stdout);
    let kubeconfig = state.join("cluster/kubeconfig");
    assert!(
        stdout.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("export TESTENV_PROMETHEUS_URL=http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&up.stderr).contains("control plane ready in"));

    let pids = recorded_pids(&state);
    let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "testenv",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "prometheus",
    ] {
        assert!(names.contains(&expected), "{expected} not recorded in {names:?}");
    }
    for (name, pid) in &pids {
        assert!(alive(*pid), "{name} ({pid}) is not running after up");
    }

    // A second `up` reuses the healthy cluster: same processes, nothing restarted.
    let again = xtask(&state, &["testenv", "up", "--with-prometheus"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("reusing the running control plane"));
    assert_eq!(recorded_pids(&state), pids);

    let status = xtask(&state, &["testenv", "status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("control plane: ready"), "{status}");
    assert!(status.contains("kwok-node-2"), "three fake nodes: {status}");

    xtask(&state, &["testenv", "down"]);
    // Processes are reaped by their parents shortly after they die; allow that, but no longer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let survivors: Vec<_> = pids.iter().filter(|(_, pid)| alive(*pid)).collect();
        if survivors.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after down: {survivors:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!state.exists(), "down removes the state directory");
}
