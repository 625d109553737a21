//! `cargo xtask dist`: release builds of the binaries that ship (`flagger`, `flagger-loadtester`), with
//! their sizes.

use anyhow::{Context, Result, bail};

/// The binaries of the container image: (package, binary).
const BINARIES: &[(&str, &str)] = &[
    ("flagger", "flagger"),
    ("flagger-loadtester", "flagger-loadtester"),
];

/// Runs the task; no arguments are accepted.
pub fn cli(args: &[&str]) -> Result<()> {
    if let Some(extra) = args.first() {
        bail!("dist takes no arguments (got `{extra}`)");
    }
    let mut cmd = crate::cargo();
    cmd.args(["build", "--release"]);
    for (package, _) in BINARIES {
        cmd.args(["-p", package]);
    }
    crate::run(&mut cmd)?;
    let dir = crate::target_dir().join("release");
    println!("{:<22} {:>12} {:>10}  path", "binary", "bytes", "MiB");
    for (_, bin) in BINARIES {
        let path = dir.join(bin);
        let len = std::fs::metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        // Display only: the precision lost converting u64 to f64 does not matter for a size in MiB.
        #[allow(clippy::cast_precision_loss)]
        let mib = len as f64 / (1024.0 * 1024.0);
        println!("{bin:<22} {len:>12} {mib:>10.1}  {}", path.display());
    }
    Ok(())
}
