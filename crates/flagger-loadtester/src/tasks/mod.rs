//! Tasks: what `POST /` runs, chosen by `metadata.type` (default `cmd`).
//!
//! | type | run | answer |
//! |---|---|---|
//! | `cmd` | in the background: `sh -c <cmd>`, or the built-in `hey` | 202 at once |
//! | `bash` | blocking: `bash -c <cmd>`, or the built-in `hey` | 200 (+ output with `returnCmdOutput`), 500 + error |
//! | `helm`, `helmv3` | blocking: `helm <cmd split on whitespace>` | as `bash` |
//! | `kubectl` | blocking: `kubectl <cmd split on whitespace>` | as `bash` |
//! | `concord` | blocking: a Concord process ([`remote::Concord`]) | 200 / 500 |
//! | `ngrinder` | in the background: an nGrinder test ([`remote::NGrinder`]) | 202 at once |
//!
//! A background task is skipped while an identical one (same canary, same command) is still running.
//! Every task is bounded by the `-timeout` (or its own `metadata.timeout`, a Go duration); on expiry the
//! task's whole process group is killed.

pub mod exec;
pub mod remote;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flagger_core::duration::parse_go_duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::hey;
use crate::metrics::Metrics;

/// The default task type.
pub const TYPE_CMD: &str = "cmd";

/// What the handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

impl Answer {
    fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }
}

/// A background task.
enum Background {
    Shell {
        command: String,
        native: Option<Box<hey::Options>>,
        log_output: bool,
    },
    NGrinder(remote::NGrinder),
}

impl Background {
    fn key(&self, canary: &str) -> String {
        match self {
            Self::Shell { command, .. } => format!("{canary}{command}"),
            Self::NGrinder(t) => format!("{canary}{}", t.clone_id),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Self::Shell { .. } => TYPE_CMD,
            Self::NGrinder(_) => remote::TYPE_NGRINDER,
        }
    }
}

impl fmt::Display for Background {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shell { command, .. } => f.write_str(command),
            Self::NGrinder(t) => write!(f, "{}", t.clone_and_start_url()),
        }
    }
}

/// Runs tasks; clones share the set of running background tasks.
#[derive(Clone, Debug)]
pub struct Runner {
    timeout: Duration,
    running: Arc<Mutex<HashSet<String>>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    metrics: Metrics,
}

/// Go's `strconv.ParseBool`; anything else is `false`, as Flagger ignores the parse error.
fn go_bool(value: Option<&String>) -> bool {
    value.is_some_and(|v| flagger_core::goflag::parse_bool(v) == Ok(true))
}

/// `command <cmd> failed: <output>: <error>`, Flagger's error text for blocking tasks.
fn failure(command: &str, output: &[u8], error: &dyn fmt::Display) -> Answer {
    Answer::new(
        500,
        format!(
            "command {command} failed: {}: {error}",
            String::from_utf8_lossy(output)
        ),
    )
}

impl Runner {
    /// A runner whose tasks time out after `timeout` and are killed when `cancel` fires.
    pub fn new(timeout: Duration, cancel: CancellationToken, metrics: Metrics) -> Self {
        Self {
            timeout,
            running: Arc::default(),
            cancel,
            tracker: TaskTracker::new(),
            metrics,
        }
    }

    /// Waits until every background task has ended (after `cancel` they end promptly).
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Runs the task in `metadata` for `canary` (`<name>.<namespace>`).
    pub async fn handle(&self, canary: &str, metadata: &BTreeMap<String, String>) -> Answer {
        let typ = metadata.get("type").map_or(TYPE_CMD, String::as_str);
        let return_output = go_bool(metadata.get("returnCmdOutput"));
        let timeout = match metadata.get("timeout") {
            Some(t) => match parse_go_duration(t) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => return Answer::new(400, format!("invalid timeout {t}: must be positive")),
                Err(e) => return Answer::new(400, format!("invalid timeout {t}: {e}")),
            },
            None => self.timeout,
        };
        let command = metadata.get("cmd").cloned().unwrap_or_default();
        let answer = match typ {
            "bash" => {
                tracing::info!(canary, "bash command {command}");
                self.blocking(
                    canary,
                    typ,
                    "bash",
                    vec!["-c".to_owned(), command.clone()],
                    &command,
                    timeout,
                )
                .await
            }
            "helm" | "helmv3" => {
                tracing::info!(canary, "running command helmv3 {command}");
                let args = command.split_whitespace().map(str::to_owned).collect();
                self.blocking(canary, typ, "helm", args, &command, timeout).await
            }
            "kubectl" => {
                tracing::info!(canary, "running command kubectl {command}");
                let args = command.split_whitespace().map(str::to_owned).collect();
                self.blocking(canary, typ, "kubectl", args, &command, timeout)
                    .await
            }
            remote::TYPE_CONCORD => match remote::Concord::from_metadata(metadata) {
                Err(e) => {
                    tracing::error!(canary, "concord task init error: {e}");
                    Answer::new(500, e.to_string())
                }
                Ok(task) => {
                    let run = task.run(canary);
                    let result = tokio::select! {
                        r = tokio::time::timeout(timeout, run) => r.unwrap_or(Err(remote::RemoteError::Timeout(timeout))),
                        () = self.cancel.cancelled() => Err(remote::RemoteError::Cancelled),
                    };
                    match result {
                        Ok(()) => Answer::new(200, ""),
                        Err(e) => {
                            tracing::error!(canary, "concord task error: {e}");
                            Answer::new(500, e.to_string())
                        }
                    }
                }
            },
            TYPE_CMD => {
                if !metadata.contains_key("cmd") {
                    return self.rejected(typ, "cmd not found in metadata");
                }
                let native = match hey::plan(&command) {
                    Ok(hey::Plan::Native(o)) => Some(o),
                    Ok(hey::Plan::Shell) => None,
                    Err(e) => return self.rejected(typ, &e.to_string()),
                };
                self.spawn(
                    canary,
                    Background::Shell {
                        command,
                        native,
                        log_output: go_bool(metadata.get("logCmdOutput")),
                    },
                    timeout,
                );
                return Answer::new(202, "");
            }
            remote::TYPE_NGRINDER => match remote::NGrinder::from_metadata(metadata) {
                Ok(task) => {
                    self.spawn(canary, Background::NGrinder(task), timeout);
                    return Answer::new(202, "");
                }
                Err(e) => return self.rejected(typ, &e.to_string()),
            },
            other => return self.rejected(other, &format!("unknown task type {other}")),
        };
        let result = if answer.status < 300 { "ok" } else { "failed" };
        self.metrics.task(typ, result);
        if answer.status < 300 && !return_output {
            return Answer::new(answer.status, "");
        }
        answer
    }

    fn rejected(&self, typ: &str, message: &str) -> Answer {
        tracing::warn!("task rejected: {message}");
        self.metrics.task(typ, "rejected");
        Answer::new(400, message)
    }

    /// Runs `program args` (or the built-in hey for `bash`) and answers as Flagger's blocking tasks do.
    async fn blocking(
        &self,
        canary: &str,
        typ: &str,
        program: &str,
        args: Vec<String>,
        command: &str,
        timeout: Duration,
    ) -> Answer {
        if typ == "bash" {
            match hey::plan(command) {
                Ok(hey::Plan::Native(opts)) => {
                    return match self.native_hey(&opts, timeout).await {
                        Ok(summary) => {
                            tracing::info!(canary, "{summary}");
                            tracing::info!(canary, "command finished {command}");
                            Answer::new(200, summary)
                        }
                        Err(e) => failure(command, b"", &e),
                    };
                }
                Ok(hey::Plan::Shell) => {}
                Err(e) => return failure(command, b"", &e),
            }
        }
        let done = exec::run(program, &args, timeout, &self.cancel).await;
        match done.result {
            Ok(()) => {
                tracing::info!(canary, "{}", String::from_utf8_lossy(&done.output));
                tracing::info!(canary, "command finished {command}");
                Answer::new(200, done.output)
            }
            Err(e) => {
                tracing::error!(
                    canary,
                    "command failed {command} {e} {}",
                    String::from_utf8_lossy(&done.output)
                );
                failure(command, &done.output, &e)
            }
        }
    }

    /// Runs the built-in hey until done, the timeout, or shutdown; returns its summary.
    async fn native_hey(&self, opts: &hey::Options, timeout: Duration) -> Result<String, hey::RunError> {
        let stop = self.cancel.child_token();
        let timer = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                stop.cancel();
            })
        };
        let report = hey::run(opts, &stop).await;
        timer.abort();
        report.map(|r| r.summary())
    }

    fn spawn(&self, canary: &str, task: Background, timeout: Duration) {
        let key = task.key(canary);
        {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            if !running.insert(key.clone()) {
                tracing::info!(canary, "command skipped {task} is already running");
                self.metrics.task(task.type_name(), "skipped");
                return;
            }
        }
        let this = self.clone();
        let canary = canary.to_owned();
        self.metrics.running(1);
        self.tracker.spawn(async move {
            tracing::info!(canary, "task starting {task}");
            let ok = this.run_background(&canary, &task, timeout).await;
            this.metrics
                .task(task.type_name(), if ok { "ok" } else { "failed" });
            this.metrics.running(-1);
            this.running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
        });
    }

    async fn run_background(&self, canary: &str, task: &Background, timeout: Duration) -> bool {
        match task {
            Background::Shell {
                command,
                native: Some(opts),
                log_output,
            } => match self.native_hey(opts, timeout).await {
                Ok(summary) => {
                    if *log_output {
                        tracing::info!(canary, "{summary}");
                    }
                    tracing::info!(canary, "command finished {command}");
                    true
                }
                Err(e) => {
                    tracing::error!(canary, "command failed {command} {e}");
                    false
                }
            },
            Background::Shell {
                command,
                native: None,
                log_output,
            } => {
                let args = vec!["-c".to_owned(), command.clone()];
                let done = exec::run("sh", &args, timeout, &self.cancel).await;
                let out = String::from_utf8_lossy(&done.output);
                match done.result {
                    Ok(()) => {
                        if *log_output {
                            tracing::info!(canary, "{out}");
                        }
                        tracing::info!(canary, "command finished {command}");
                        true
                    }
                    Err(e) => {
                        tracing::error!(canary, "command failed {command} {e} {out}");
                        false
                    }
                }
            }
            Background::NGrinder(t) => {
                let result = tokio::select! {
                    r = t.run(canary, timeout) => r,
                    () = self.cancel.cancelled() => Err(remote::RemoteError::Cancelled),
                };
                match result {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(canary, "ngrinder task failed: {e}");
                        false
                    }
                }
            }
        }
    }
}
