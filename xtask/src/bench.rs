//! `cargo xtask bench loadgen`: the load tester's built-in hey against the real `hey`, on the same test app,
//! for the same duration and concurrency. A benchmark, not a test: it prints the numbers and fails only when
//! something cannot run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{cargo, run};

const USAGE: &str = "cargo xtask bench loadgen [--duration 10s] [--concurrency 50]";

/// Entry point for `cargo xtask bench ...`.
pub fn cli(args: &[&str]) -> Result<()> {
    match args {
        ["loadgen", rest @ ..] => {
            let mut duration = "10s".to_owned();
            let mut concurrency = "50".to_owned();
            let mut it = rest.iter();
            while let Some(arg) = it.next() {
                match *arg {
                    "--duration" => duration = it.next().context(USAGE)?.to_string(),
                    "--concurrency" => concurrency = it.next().context(USAGE)?.to_string(),
                    other => bail!("unknown argument `{other}`\nusage: {USAGE}"),
                }
            }
            loadgen(&duration, &concurrency)
        }
        _ => bail!("usage: {USAGE}"),
    }
}

/// `hey` from the cache dir, installed with `go install` when missing.
fn hey() -> Result<PathBuf> {
    let bin_dir = crate::target_dir().join("bench").join("bin");
    let hey = bin_dir.join("hey");
    if !hey.exists() {
        std::fs::create_dir_all(&bin_dir)?;
        run(Command::new("go")
            .args(["install", "github.com/rakyll/hey@latest"])
            .env("GOBIN", &bin_dir))
        .context("installing hey needs a Go toolchain")?;
    }
    Ok(hey)
}

struct TestApp(Child);

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the test app binary and returns it with its address (its first stdout line).
fn testapp(bin: &Path) -> Result<(TestApp, String)> {
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let app = TestApp(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line.trim().to_owned();
    if addr.is_empty() {
        bail!("the test app did not print its address");
    }
    Ok((app, addr))
}

/// Requests/sec and the 99th percentile latency (seconds) from a hey summary.
fn parse_summary(text: &str) -> Result<(f64, f64)> {
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::trim))
            .with_context(|| format!("no {prefix:?} in:\n{text}"))
    };
    let rps: f64 = field("Requests/sec:")?.parse()?;
    // hey's releases print `99%% in` (a template `%%` never passed through printf).
    let p99: f64 = field("99%% in")
        .or_else(|_| field("99% in"))?
        .trim_end_matches("secs")
        .trim()
        .parse()?;
    Ok((rps, p99))
}

fn load(program: &Path, prefix: &[&str], duration: &str, concurrency: &str, url: &str) -> Result<(f64, f64)> {
    let out = Command::new(program)
        .args(prefix)
        .args(["-z", duration, "-c", concurrency, url])
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_summary(&String::from_utf8_lossy(&out.stdout))
}

fn loadgen(duration: &str, concurrency: &str) -> Result<()> {
    run(cargo().args(["build", "--release", "-p", "flagger-loadtester", "-p", "testapp"]))?;
    let release = crate::target_dir().join("release");
    let hey = hey()?;
    let (_app, addr) = testapp(&release.join("testapp"))?;
    let url = format!("http://{addr}/");
    eprintln!("xtask: load: -z {duration} -c {concurrency} {url}");
    // Real hey first, then the built-in one, on the same (warmed-up) app.
    let (hey_rps, hey_p99) = load(&hey, &[], duration, concurrency, &url)?;
    let (own_rps, own_p99) = load(
        &release.join("flagger-loadtester"),
        &["hey"],
        duration,
        concurrency,
        &url,
    )?;
    println!("load generator        requests/sec    p99 latency");
    println!(
        "hey (Go)              {hey_rps:>12.1}    {:>8.2} ms",
        hey_p99 * 1e3
    );
    println!(
        "built-in (flagger-rs) {own_rps:>12.1}    {:>8.2} ms",
        own_p99 * 1e3
    );
    println!(
        "built-in / hey        {:>12.2}x   {:>8.2}x",
        own_rps / hey_rps,
        own_p99 / hey_p99
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_summary;

    #[test]
    fn reads_heys_summary() {
        let text = "\nSummary:\n  Total:\t10.0021 secs\n  Requests/sec:\t1234.5678\n\nLatency distribution:\n  95%% in 0.0100 secs\n  99%% in 0.0250 secs\n";
        assert_eq!(parse_summary(text).unwrap(), (1234.5678, 0.025));
    }
}
