//! `flagger validate FILE...`

use std::{
    io::{Read, Write},
    path::Path,
    process::ExitCode,
};

use flagger_core::{
    document::{DocumentReport, check_documents},
    validate::ValidationContext,
};
use serde_json::Value;

use crate::cli::{Flags, ValidateArgs};

/// Checks every file and prints one line per problem. Exit status 0 (valid), 1 (problems), 2 (a file
/// could not be read).
pub fn run(flags: &Flags, args: &ValidateArgs) -> ExitCode {
    let ctx = ValidationContext {
        mesh_provider: flags.mesh_provider.clone(),
        no_cross_namespace_refs: flags.no_cross_namespace_refs,
        default_namespace: if flags.namespace.is_empty() {
            "default".to_owned()
        } else {
            flags.namespace.clone()
        },
    };
    let mut problems = 0usize;
    let mut unreadable = false;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for path in &args.files {
        let (label, text) = match read(path) {
            Ok(read) => read,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                unreadable = true;
                continue;
            }
        };
        let lines = check_text(&label, &text, &ctx);
        problems += lines.len();
        for line in lines {
            if writeln!(out, "{line}").is_err() {
                return ExitCode::from(2);
            }
        }
    }
    if out.flush().is_err() || unreadable {
        return ExitCode::from(2);
    }
    if problems > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn read(path: &Path) -> std::io::Result<(String, String)> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return Ok(("-".to_owned(), text));
    }
    Ok((path.display().to_string(), std::fs::read_to_string(path)?))
}

/// The problem lines of one file: `FILE:DOC_INDEX: KIND/NAME: PATH: MESSAGE`.
pub fn check_text(label: &str, text: &str, ctx: &ValidationContext) -> Vec<String> {
    let docs: Vec<Value> = match serde_saphyr::from_multiple(text) {
        Ok(docs) => docs,
        Err(e) => {
            // The first line holds the position and the reason; the rest is a source snippet.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let message = first.strip_prefix("error: ").unwrap_or(first);
            return vec![format!("{label}: invalid YAML: {message}")];
        }
    };
    let mut lines = Vec::new();
    for (index, doc) in docs.iter().enumerate() {
        for report in check_documents(doc, ctx) {
            if let DocumentReport::Checked { kind, name, problems } = report {
                for p in problems {
                    lines.push(format!(
                        "{label}:{index}: {kind}/{name}: {}: {}",
                        p.path, p.message
                    ));
                }
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_are_one_line() {
        let lines = check_text("x.yaml", "a: [1, 2\nb: c\n", &ValidationContext::default());
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("x.yaml: invalid YAML: "), "{lines:?}");
        assert!(!lines[0].contains('\n'));
    }

    #[test]
    fn empty_documents_are_not_counted() {
        let text = "---\n---\napiVersion: flagger.app/v1beta1\nkind: Rollout\nmetadata:\n  name: r\n";
        assert_eq!(
            check_text("x.yaml", text, &ValidationContext::default()),
            vec![
                "x.yaml:0: Rollout/r: kind: unknown kind \"Rollout\" in flagger.app; expected Canary, \
                 MetricTemplate or AlertProvider"
                    .to_owned()
            ]
        );
    }
}
