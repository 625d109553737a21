//! `cargo xtask testenv`: the local control plane (see testenv/README.md).
//!
//! State lives in `<repo>/.testenv/` (or `$FLAGGER_TESTENV_STATE`): `cluster/` belongs to the Go supervisor
//! (`testenv up`), `prometheus/` to Prometheus. Processes are always stopped by their recorded pids.
//! `cargo xtask test` uses `.testenv/test-run/` instead: a fresh control plane for every run.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{prometheus, root, run};

pub const DEFAULT_NODES: u32 = 3;
const READY_TIMEOUT: Duration = Duration::from_secs(180);

pub fn cli(args: &[&str]) -> Result<()> {
    match args {
        ["up", rest @ ..] => {
            let mut with_prometheus = false;
            let mut nodes = DEFAULT_NODES;
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                match *a {
                    "--with-prometheus" => with_prometheus = true,
                    "--nodes" => {
                        nodes = it
                            .next()
                            .context("--nodes needs a number")?
                            .parse()
                            .context("--nodes")?;
                    }
                    other => bail!("unknown option `{other}` for `testenv up`"),
                }
            }
            build()?;
            ensure_up(with_prometheus, nodes)?;
            println!("{}", exports()?);
            Ok(())
        }
        ["down"] => down(),
        ["status"] => status(),
        ["env"] => {
            println!("{}", exports()?);
            Ok(())
        }
        ["build"] => build(),
        _ => bail!(
            "usage: cargo xtask testenv up [--with-prometheus] [--nodes N] | down | status | env | build"
        ),
    }
}

/// The state directory `cargo xtask test` uses instead of the default, set once at its start.
static STATE_OVERRIDE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes this process use its own control plane in `dir` (see [`state_dir`]).
pub fn use_state_dir(dir: PathBuf) {
    let _ = STATE_OVERRIDE.set(dir);
}

pub fn state_dir() -> PathBuf {
    if let Some(dir) = STATE_OVERRIDE.get() {
        return dir.clone();
    }
    std::env::var_os("FLAGGER_TESTENV_STATE").map_or_else(|| root().join(".testenv"), PathBuf::from)
}

fn cluster_dir() -> PathBuf {
    state_dir().join("cluster")
}

fn prometheus_dir() -> PathBuf {
    state_dir().join("prometheus")
}

pub fn bin_dir() -> PathBuf {
    root().join("testenv").join("bin")
}

fn go_env(cmd: &mut Command) -> &mut Command {
    // Debian-style installs keep Go outside the default PATH of non-login shells.
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{path}:/usr/local/go/bin:/usr/lib/go/bin"))
        .env("GOTOOLCHAIN", "local")
}

/// Builds the control plane binaries; a no-op when the cache for this go.sum/Go version/script is warm.
pub fn build() -> Result<()> {
    let started = Instant::now();
    run(go_env(&mut Command::new("bash"))
        .arg("testenv/build.sh")
        .stdout(Stdio::null()))?;
    eprintln!(
        "xtask: testenv binaries ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `gofmt -l` must list nothing.
pub fn gofmt_check() -> Result<()> {
    let out = go_env(&mut Command::new("gofmt"))
        .args(["-l", "testenv/cmd"])
        .current_dir(root())
        .output()
        .context("cannot run gofmt")?;
    let listed = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !listed.trim().is_empty() {
        bail!(
            "gofmt: these files need formatting:\n{listed}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

pub struct UpGuard {
    /// True when this call started the control plane (so the caller should bring it down again).
    pub started_here: bool,
}

fn read_pid(path: &PathBuf) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A process is alive when /proc knows it and it is not a zombie.
pub fn alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    stat.rfind(')')
        .and_then(|i| stat.get(i + 2..i + 3))
        .is_some_and(|state| state != "Z")
}

fn kubectl() -> Command {
    let mut cmd = Command::new(bin_dir().join("kubectl"));
    cmd.env("KUBECONFIG", cluster_dir().join("kubeconfig"));
    cmd
}

/// The cluster is healthy when its supervisor lives, it reported ready, and the API server answers /readyz.
fn cluster_healthy() -> bool {
    let dir = cluster_dir();
    read_pid(&dir.join("testenv.pid")).is_some_and(alive)
        && dir.join("ready").exists()
        && kubectl()
            .args(["get", "--raw", "/readyz"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

pub fn ensure_up(with_prometheus: bool, nodes: u32) -> Result<UpGuard> {
    let mut started_here = false;
    if cluster_healthy() {
        eprintln!(
            "xtask: reusing the running control plane in {}",
            cluster_dir().display()
        );
    } else {
        // Anything left from a crashed run is stopped by its recorded pids first.
        stop_cluster()?;
        start_cluster(nodes)?;
        started_here = true;
    }
    if with_prometheus && prometheus::running(&prometheus_dir()).is_none() {
        prometheus::ensure_installed()?;
        let started = Instant::now();
        let p = prometheus::start(&prometheus_dir())?;
        eprintln!(
            "xtask: prometheus ready at {} in {:.1}s",
            p.url,
            started.elapsed().as_secs_f64()
        );
        started_here = true;
    }
    Ok(UpGuard { started_here })
}

fn start_cluster(nodes: u32) -> Result<()> {
    let dir = cluster_dir();
    fs::create_dir_all(state_dir())?;
    let log_path = state_dir().join("testenv.log");
    let log = fs::File::create(&log_path)?;
    let started = Instant::now();
    // The supervisor runs in its own process group, detached from this terminal, so it outlives xtask.
    let mut child = Command::new(bin_dir().join("testenv"))
        .args(["up", "--state"])
        .arg(&dir)
        .arg("--bin")
        .arg(bin_dir())
        .args(["--nodes", &nodes.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("cannot start testenv (did `cargo xtask testenv build` run?)")?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if dir.join("ready").exists() {
            break;
        }
        if let Some(status) = child.try_wait()? {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            bail!("the control plane failed to start ({status}):\n{log}");
        }
        if Instant::now() > deadline {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            let _ = stop_cluster();
            bail!("the control plane was not ready after {READY_TIMEOUT:?}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "xtask: control plane ready in {:.1}s ({})",
        started.elapsed().as_secs_f64(),
        fs::read_to_string(dir.join("timings"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn stop_cluster() -> Result<()> {
    let dir = cluster_dir();
    if !dir.exists() {
        return Ok(());
    }
    run(Command::new(bin_dir().join("testenv"))
        .args(["down", "--state"])
        .arg(&dir))
}

pub fn down() -> Result<()> {
    prometheus::stop(&prometheus_dir())?;
    stop_cluster()?;
    let _ = fs::remove_dir_all(state_dir());
    eprintln!("xtask: control plane down");
    Ok(())
}

fn status() -> Result<()> {
    if cluster_healthy() {
        println!("control plane: ready ({})", cluster_dir().display());
        run(kubectl().args(["get", "nodes"]))?;
    } else {
        println!("control plane: not running (start it with `cargo xtask testenv up`)");
    }
    match prometheus::running(&prometheus_dir()) {
        Some(p) => println!("prometheus: running at {}", p.url),
        None => println!("prometheus: not running (`cargo xtask testenv up --with-prometheus`)"),
    }
    Ok(())
}

/// The variables tests read: KUBECONFIG, TESTENV_BIN, and the Prometheus ones when it runs.
pub fn env_vars() -> Result<Vec<(String, String)>> {
    if !cluster_healthy() {
        bail!("the control plane is not running: start it with `cargo xtask testenv up --with-prometheus`");
    }
    let mut vars = vec![
        (
            "KUBECONFIG".to_string(),
            cluster_dir().join("kubeconfig").display().to_string(),
        ),
        ("TESTENV_BIN".to_string(), bin_dir().display().to_string()),
    ];
    if let Some(p) = prometheus::running(&prometheus_dir()) {
        vars.push(("TESTENV_PROMETHEUS_URL".to_string(), p.url.clone()));
        vars.push((
            "TESTENV_PROMETHEUS_SD_DIR".to_string(),
            p.sd_dir.display().to_string(),
        ));
    }
    Ok(vars)
}

fn exports() -> Result<String> {
    Ok(env_vars()?
        .iter()
        .map(|(k, v)| format!("export {k}={v}"))
        .collect::<Vec<_>>()
        .join("\n"))
}
