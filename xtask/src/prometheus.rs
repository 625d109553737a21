//! A private Prometheus for the test environment.
//!
//! Debian's `prometheus` package supplies the binary; its systemd unit is never used. We run our own process on
//! 127.0.0.1 with a free port, a generated config (1s scrape interval, `file_sd_configs` watching `sd/*.json`),
//! and its own storage, all under the state directory:
//!
//! ```text
//! <state_dir>/prometheus.yml   generated config
//! <state_dir>/sd/              file_sd target files (TESTENV_PROMETHEUS_SD_DIR)
//! <state_dir>/data/            TSDB
//! <state_dir>/prometheus.log   stdout + stderr
//! <state_dir>/state            pid=, url=, sd_dir= of the running process
//! ```
//!
//! The process is stopped by its recorded pid, after checking that the pid still belongs to a prometheus started
//! with our config file.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long Prometheus may take to answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running Prometheus started by [`start`].
#[derive(Debug, Clone)]
pub struct Prometheus {
    pub pid: i32,
    /// `http://127.0.0.1:PORT`, exported as `TESTENV_PROMETHEUS_URL`.
    pub url: String,
    /// Directory of file_sd JSON target files, exported as `TESTENV_PROMETHEUS_SD_DIR`.
    pub sd_dir: PathBuf,
}

/// Installs Debian's `prometheus` package unless a `prometheus` binary is already on PATH.
pub fn ensure_installed() -> Result<()> {
    if find_binary().is_some() {
        return Ok(());
    }
    eprintln!("xtask: prometheus not found on PATH; installing Debian's `prometheus` package");
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", "--no-install-recommends", "prometheus"],
    ] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .with_context(|| format!("cannot run `apt-get {}`", args.join(" ")))?;
        if !status.success() {
            bail!("`apt-get {}` failed ({status})", args.join(" "));
        }
    }
    match find_binary() {
        Some(_) => Ok(()),
        None => bail!("`apt-get install prometheus` succeeded but no `prometheus` binary is on PATH"),
    }
}

/// The Prometheus recorded in `state_dir` when its process is alive and answers `/-/ready`.
pub fn running(state_dir: &Path) -> Option<Prometheus> {
    let p = read_state(state_dir)?;
    (alive(p.pid) && is_ours(p.pid, state_dir) && ready(&p.url)).then_some(p)
}

/// Starts Prometheus on a free loopback port and waits until it is ready.
///
/// Anything recorded from an earlier run in `state_dir` is stopped first; the TSDB and the target files are
/// wiped so that every environment starts empty.
pub fn start(state_dir: &Path) -> Result<Prometheus> {
    stop(state_dir)?;
    let binary = find_binary().context("no `prometheus` on PATH: call ensure_installed() first")?;
    let sd_dir = state_dir.join("sd");
    let data_dir = state_dir.join("data");
    if data_dir.exists() {
        fs::remove_dir_all(&data_dir).with_context(|| format!("cannot remove {}", data_dir.display()))?;
    }
    // Target files left by test processes that died belong to the previous Prometheus.
    if sd_dir.exists() {
        fs::remove_dir_all(&sd_dir).with_context(|| format!("cannot remove {}", sd_dir.display()))?;
    }
    fs::create_dir_all(&sd_dir).with_context(|| format!("cannot create {}", sd_dir.display()))?;
    fs::create_dir_all(&data_dir)?;
    let sd_dir = sd_dir.canonicalize()?;
    let config_path = config_path(state_dir)?;
    fs::write(&config_path, config_yaml(&sd_dir))?;

    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let log_path = state_dir.join("prometheus.log");
    let log = fs::File::create(&log_path)?;
    // Its own process group, detached from the terminal, so it outlives xtask and a Ctrl-C of it.
    let mut child = Command::new(&binary)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            data_dir.canonicalize()?.display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-lifecycle")
        .arg("--storage.tsdb.retention.time=1d")
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let pid = i32::try_from(child.id()).context("pid out of range")?;
    let prometheus = Prometheus { pid, url, sd_dir };
    write_state(state_dir, &prometheus)?;

    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if ready(&prometheus.url) {
            return Ok(prometheus);
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "prometheus exited ({status}) before it was ready:\n{}",
                log_tail(&log_path)
            );
        }
        if Instant::now() > deadline {
            let _ = stop(state_dir);
            let _ = child.try_wait();
            bail!(
                "prometheus was not ready after {READY_TIMEOUT:?}:\n{}",
                log_tail(&log_path)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops the Prometheus recorded in `state_dir`, if any: SIGTERM, then SIGKILL after a grace period.
/// Returns whether a process was stopped. The TSDB and target files are left for inspection.
pub fn stop(state_dir: &Path) -> Result<bool> {
    let Some(p) = read_state(state_dir) else {
        return Ok(false);
    };
    let state_file = state_dir.join("state");
    if !alive(p.pid) || !is_ours(p.pid, state_dir) {
        fs::remove_file(&state_file).ok();
        return Ok(false);
    }
    signal(p.pid, "TERM")?;
    let deadline = Instant::now() + STOP_TIMEOUT;
    while alive(p.pid) {
        if Instant::now() > deadline {
            eprintln!(
                "xtask: prometheus (pid {}) ignored SIGTERM for {STOP_TIMEOUT:?}; killing it",
                p.pid
            );
            signal(p.pid, "KILL")?;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    fs::remove_file(&state_file).ok();
    Ok(true)
}

fn config_yaml(sd_dir: &Path) -> String {
    // honor_labels: the test app exports kubernetes_namespace/kubernetes_pod_name itself (what the
    // relabelling of Flagger's Prometheus chart derives from pod metadata); target labels must not rename them.
    format!(
        "# Generated by `cargo xtask testenv`; rewritten on every start.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: testenv
    honor_labels: true
    file_sd_configs:
      - files: ['{}/*.json']
        refresh_interval: 5s
",
        sd_dir.display()
    )
}

fn config_path(state_dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(state_dir).with_context(|| format!("cannot create {}", state_dir.display()))?;
    Ok(state_dir.canonicalize()?.join("prometheus.yml"))
}

fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// `GET /-/ready` answered 200, over plain HTTP/1.0 on loopback.
fn ready(url: &str) -> bool {
    let Some(addr) = url
        .strip_prefix("http://")
        .and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        return false;
    };
    if !addr.ip().is_loopback() {
        return false;
    }
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && head.ends_with(b"200")
}

fn alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    stat.rfind(')')
        .and_then(|i| stat.get(i + 2..i + 3))
        .is_some_and(|state| state != "Z")
}

/// The pid runs prometheus with this state dir's config file (guards against pid reuse).
fn is_ours(pid: i32, state_dir: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let Ok(config) = config_path(state_dir) else {
        return false;
    };
    let expected = format!("--config.file={}", config.display());
    cmdline.split(|b| *b == 0).any(|arg| arg == expected.as_bytes())
}

fn signal(pid: i32, name: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .context("cannot run `kill`")?;
    if !status.success() && alive(pid) {
        bail!("`kill -{name} {pid}` failed ({status})");
    }
    Ok(())
}

fn write_state(state_dir: &Path, p: &Prometheus) -> Result<()> {
    let text = format!("pid={}\nurl={}\nsd_dir={}\n", p.pid, p.url, p.sd_dir.display());
    fs::write(state_dir.join("state"), text).context("cannot record the prometheus pid")
}

fn read_state(state_dir: &Path) -> Option<Prometheus> {
    let text = fs::read_to_string(state_dir.join("state")).ok()?;
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    };
    Some(Prometheus {
        pid: field("pid")?.parse().ok()?,
        url: field("url")?.to_string(),
        sd_dir: PathBuf::from(field("sd_dir")?),
    })
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_state_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-prometheus-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn state_round_trips() {
        let dir = temp_state_dir("state");
        let p = Prometheus {
            pid: 4242,
            url: "http://127.0.0.1:9".into(),
            sd_dir: dir.join("sd"),
        };
        write_state(&dir, &p).unwrap();
        let back = read_state(&dir).unwrap();
        assert_eq!((back.pid, back.url, back.sd_dir), (p.pid, p.url, p.sd_dir));
        // A recorded pid that is not a prometheus of ours is never signalled, only forgotten.
        assert!(!stop(&dir).unwrap());
        assert!(read_state(&dir).is_none());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn config_watches_the_sd_dir_with_a_short_interval() {
        let yaml = config_yaml(Path::new("/s/sd"));
        assert!(yaml.contains("scrape_interval: 1s"));
        assert!(yaml.contains("files: ['/s/sd/*.json']"));
        assert!(yaml.contains("honor_labels: true"));
    }

    /// Starts the real binary (installed by the test environment) and stops it by pid.
    #[test]
    fn starts_ready_on_loopback_and_stops() {
        ensure_installed().unwrap();
        let dir = temp_state_dir("run");
        let started = Instant::now();
        let p = start(&dir).unwrap();
        eprintln!("prometheus ready in {:?}", started.elapsed());
        assert!(p.url.starts_with("http://127.0.0.1:"), "{}", p.url);
        assert!(p.sd_dir.is_dir());
        assert_eq!(running(&dir).map(|r| r.pid), Some(p.pid));
        assert!(stop(&dir).unwrap());
        assert!(!alive(p.pid));
        assert!(running(&dir).is_none());
        assert!(!stop(&dir).unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }
}
