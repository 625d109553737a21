//! Project tasks for flagger-rs. Run `cargo xtask help`.

mod bench;
mod demo;
mod dist;
mod prometheus;
mod testenv;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};

const HELP: &str = "\
cargo xtask <task>

Tasks:
  demo [--ci] [--keep]          a release analysed and promoted, then a bad one rolled back, on the local
                                control plane (Gateway API, real Prometheus). --ci: no live view, checks
                                the outcomes and the cleanup; --keep: leave everything running
  demo down                     stop what `demo --keep` left running
  test                          fmt check, clippy -D warnings, then every test (unit and integration),
                                then `demo --ci`. Brings the local control plane and Prometheus up when
                                they are not running, and down again afterwards if it started them.
  testenv up [--with-prometheus] [--nodes N]
                                build (cached) and start the local control plane; reuses a healthy one
  testenv down                  stop every process of the control plane and Prometheus, remove state
  testenv status                show what is running
  testenv env                   print the environment (KUBECONFIG, TESTENV_*) as shell exports
  testenv build                 only build the control plane binaries (cached)
  dist                          release builds of flagger and flagger-loadtester, with their sizes
  bench loadgen [--duration D] [--concurrency C]
                                built-in hey vs real hey (installed into target/bench) on a testapp
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["test", rest @ ..] => test(rest),
        ["demo", rest @ ..] => demo::cli(rest),
        ["testenv", rest @ ..] => testenv::cli(rest),
        ["bench", rest @ ..] => bench::cli(rest),
        ["dist", rest @ ..] => dist::cli(rest),
        [] | ["help" | "-h" | "--help"] => {
            print!("{HELP}");
            Ok(())
        }
        [other, ..] => Err(anyhow::anyhow!("unknown task `{other}`\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root (the parent of this crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Cargo's target directory (`$CARGO_TARGET_DIR`, else `<repo>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// Runs a command in the repository root, echoing it, and fails when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    cmd.current_dir(root());
    eprintln!("xtask: $ {}", display(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{}`", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Tests run at once in each test binary by `cargo xtask test`.
const TEST_THREADS: &str = "6";

fn test(args: &[&str]) -> Result<()> {
    let started = Instant::now();
    run(cargo().args(["fmt", "--all", "--check"]))?;
    testenv::gofmt_check()?;
    // Build the control plane before compiling Rust, so the two never fight over the two cores.
    testenv::build()?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;

    // Always a fresh control plane of its own, as on CI's clean clone: a test that only passes because an
    // earlier run (or a developer's `testenv up` cluster) left CRDs or objects behind fails here too. Its
    // ports are chosen at start, so it runs beside a developer's cluster.
    testenv::use_state_dir(testenv::state_dir().join("test-run"));
    testenv::down()?;
    let guard = testenv::ensure_up(true, testenv::DEFAULT_NODES)?;
    let env = testenv::env_vars()?;
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--locked"]).args(args).envs(env);
    // Most tests wait on a real control plane (release scenarios wait whole analysis intervals), not on
    // the CPU: run more of them at once than there are cores, unless the caller chose.
    if std::env::var_os("RUST_TEST_THREADS").is_none() {
        cmd.env("RUST_TEST_THREADS", TEST_THREADS);
    }
    // Last, the first run a user sees, on the same control plane.
    let result = run(&mut cmd).and_then(|()| demo::cli(&["--ci"]));
    if guard.started_here
        && let Err(e) = testenv::down()
    {
        eprintln!("xtask: warning: stopping the control plane failed: {e:#}");
    }
    result?;
    eprintln!(
        "xtask: all checks passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
