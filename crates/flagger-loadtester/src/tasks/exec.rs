//! Running a program with a deadline and collecting its combined output, as Go's
//! `exec.CommandContext(...).CombinedOutput()` does, but killing the whole process group on timeout (a
//! `sh -c` child's own children included) so that nothing outlives its task.

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio_util::sync::CancellationToken;

/// How a command ended, other than with exit status 0.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program could not be started (Go's wording for a missing executable).
    #[error("exec: {program:?}: {source}")]
    Start {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Non-zero exit (Go's `exit status N`).
    #[error("exit status {0}")]
    Exit(i32),
    /// Killed by a signal (Go's `signal: <name>`).
    #[error("signal: {0}")]
    Signal(String),
    /// The task's timeout expired; the process group was killed.
    #[error("signal: killed (timed out after {0:?})")]
    Timeout(Duration),
    /// The load tester is shutting down; the process group was killed.
    #[error("signal: killed (the load tester is shutting down)")]
    Cancelled,
    /// Reading the output failed.
    #[error("reading the output: {0}")]
    Output(#[source] std::io::Error),
}

/// The result of [`run`]: the combined stdout and stderr, and how the program ended.
#[derive(Debug)]
pub struct Finished {
    /// Combined output, in the order it was written.
    pub output: Vec<u8>,
    /// `Ok` for exit status 0.
    pub result: Result<(), ExecError>,
}

/// Runs `program args...` with stdin closed, stdout and stderr into one pipe, in a new process group.
/// Ends it when `timeout` expires or `cancel` fires.
pub async fn run(program: &str, args: &[String], timeout: Duration, cancel: &CancellationToken) -> Finished {
    let (mut reader, writer) = match std::io::pipe() {
        Ok(pipe) => pipe,
        Err(e) => return failed(ExecError::Output(e)),
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return failed(ExecError::Output(e)),
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .process_group(0)
        .kill_on_drop(true);
    let spawned = cmd.spawn();
    // The Command holds the parent's copies of the pipe's write end: drop them, or the read never ends.
    drop(cmd);
    let mut child = match spawned {
        Ok(child) => child,
        Err(source) => {
            return failed(ExecError::Start {
                program: program.to_owned(),
                source: start_error(source),
            });
        }
    };
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw);
    let read = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map(|_| out)
    });
    let mut read = std::pin::pin!(read);

    // The output ends when every process holding the pipe (background children included) is gone, as with
    // Go's CombinedOutput; the deadline covers both.
    let finished = async {
        let status = child.wait().await;
        let output = (&mut read).await;
        (status, output)
    };
    let interrupted = tokio::select! {
        (status, output) = finished => {
            let output = match output {
                Ok(Ok(out)) => out,
                Ok(Err(e)) => return failed(ExecError::Output(e)),
                Err(e) => return failed(ExecError::Output(std::io::Error::other(e))),
            };
            let result = match status {
                Ok(status) => exit_result(status),
                Err(e) => Err(ExecError::Output(e)),
            };
            return Finished { output, result };
        }
        () = tokio::time::sleep(timeout) => ExecError::Timeout(timeout),
        () = cancel.cancelled() => ExecError::Cancelled,
    };
    if let Some(pgid) = pgid {
        // The group may be gone already; nothing to do then.
        let _ = kill_process_group(pgid, Signal::KILL);
    }
    let _ = child.kill().await;
    // Every writer is dead now; what was written so far is still worth reporting.
    let output = match tokio::time::timeout(Duration::from_secs(5), &mut read).await {
        Ok(Ok(Ok(out))) => out,
        _ => Vec::new(),
    };
    Finished {
        output,
        result: Err(interrupted),
    }
}

fn failed(error: ExecError) -> Finished {
    Finished {
        output: Vec::new(),
        result: Err(error),
    }
}

fn start_error(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        std::io::Error::new(e.kind(), "executable file not found in $PATH")
    } else {
        e
    }
}

fn exit_result(status: std::process::ExitStatus) -> Result<(), ExecError> {
    use std::os::unix::process::ExitStatusExt;
    if status.success() {
        return Ok(());
    }
    if let Some(code) = status.code() {
        return Err(ExecError::Exit(code));
    }
    let signal = status.signal().unwrap_or_default();
    let name = match signal {
        9 => "killed".to_owned(),
        15 => "terminated".to_owned(),
        2 => "interrupt".to_owned(),
        6 => "aborted".to_owned(),
        11 => "segmentation fault".to_owned(),
        13 => "broken pipe".to_owned(),
        n => format!("signal {n}"),
    };
    Err(ExecError::Signal(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(cmd: &str) -> Vec<String> {
        vec!["-c".to_owned(), cmd.to_owned()]
    }

    #[tokio::test]
    async fn combined_output_and_exit_codes() {
        let cancel = CancellationToken::new();
        let f = run(
            "sh",
            &sh("echo out; echo err >&2; echo out2"),
            Duration::from_secs(10),
            &cancel,
        )
        .await;
        assert_eq!(String::from_utf8_lossy(&f.output), "out\nerr\nout2\n");
        assert!(f.result.is_ok());
        let f = run("sh", &sh("echo no; exit 3"), Duration::from_secs(10), &cancel).await;
        assert_eq!(f.result.unwrap_err().to_string(), "exit status 3");
        let f = run("no-such-program-xyz", &[], Duration::from_secs(10), &cancel).await;
        assert_eq!(
            f.result.unwrap_err().to_string(),
            "exec: \"no-such-program-xyz\": executable file not found in $PATH"
        );
    }

    #[tokio::test]
    async fn timeout_kills_grandchildren() {
        let cancel = CancellationToken::new();
        let start = std::time::Instant::now();
        // The inner sleep holds the pipe: without the group kill the read would last 30s.
        let f = run(
            "sh",
            &sh("echo started; sleep 30; echo never"),
            Duration::from_millis(500),
            &cancel,
        )
        .await;
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
        assert_eq!(String::from_utf8_lossy(&f.output), "started\n");
        assert!(matches!(f.result, Err(ExecError::Timeout(_))), "{:?}", f.result);
    }
}
