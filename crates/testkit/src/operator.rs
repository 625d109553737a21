//! Runs the `flagger` binary as a separate process against the local control plane, so tests can kill it
//! at any moment and start another.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use crate::kube::poll;

/// A running operator process. It is killed when dropped.
pub struct Operator {
    child: Child,
    port: u16,
    log: PathBuf,
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl Operator {
    /// Starts `bin` watching only `namespace`, with Flagger's flags in `args` (Go style, e.g.
    /// `-mesh-provider=kubernetes`). The kubeconfig is `$KUBECONFIG`; logs go to a file named after the
    /// namespace in the system temp directory (see [`Operator::logs`]). Waits until `/healthz` answers.
    pub async fn start(bin: &Path, namespace: &str, args: &[&str]) -> Result<Self> {
        let kubeconfig = std::env::var("KUBECONFIG").context("KUBECONFIG is not set")?;
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("flagger-{namespace}-{port}.log"));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .arg(format!("-kubeconfig={kubeconfig}"))
            .arg(format!("-namespace={namespace}"))
            .arg(format!("-port={port}"))
            .arg("-log-level=debug")
            .args(args)
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut op = Self { child, port, log };
        op.wait_healthy().await?;
        Ok(op)
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let client = reqwest::Client::new();
        let mut exited = None;
        let result = poll("the operator's /healthz", Duration::from_secs(30), || {
            let client = client.clone();
            let url = url.clone();
            if exited.is_none() {
                exited = self.child.try_wait().ok().flatten();
            }
            let gone = exited;
            async move {
                if let Some(status) = gone {
                    return Err(anyhow!("the operator exited with {status}"));
                }
                Ok(match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(r.status().to_string()),
                    Err(e) => Err(e.to_string()),
                })
            }
        })
        .await;
        result.map_err(|e| anyhow!("{e:#}\n--- operator log ---\n{}", self.logs()))
    }

    /// The port of its HTTP server (`/metrics`, `/healthz`, `/readyz`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it with SIGKILL (no chance to clean up) and waits for it to be gone.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Sends SIGTERM (a graceful stop) and waits up to `timeout` for it to exit, returning its status.
    pub async fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed: {status}");
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "still running {timeout:?} after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether it has exited, with its status.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// `GET /metrics` as text.
    pub async fn metrics(&self) -> Result<String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        Ok(reqwest::get(url).await?.text().await?)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
