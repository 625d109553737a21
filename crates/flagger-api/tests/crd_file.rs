//! `deploy/crds.yaml` must be exactly what [`flagger_api::crds_yaml`] generates.

use std::path::PathBuf;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds.yaml")
}

#[test]
fn committed_crds_match_the_generated_ones() {
    let generated = flagger_api::crds_yaml();
    let path = committed_path();
    if std::env::var_os("UPDATE_CRDS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write deploy/crds.yaml");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map_or_else(
                || {
                    format!(
                        "one file is a prefix of the other ({} vs {} lines)",
                        committed.lines().count(),
                        generated.lines().count()
                    )
                },
                |(i, (a, b))| format!("line {}:\n  committed: {a}\n  generated: {b}", i + 1),
            );
        panic!(
            "deploy/crds.yaml is out of date with the flagger-api types; first difference at {first_difference}\n\
             Regenerate it with `UPDATE_CRDS=1 cargo test -p flagger-api --test crd_file` \
             (or `cargo run -p flagger -- crds > deploy/crds.yaml`) and commit the result."
        );
    }
}
