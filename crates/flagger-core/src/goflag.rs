//! Go-style command lines (the `flag` package), shared by the `flagger` and `flagger-loadtester` binaries.
//!
//! Go accepts `-name`, `--name`, `-name=value` and `-name value` (the last only for flags that take a
//! value). [`normalize`] rewrites such a command line into the GNU form (`--name`, `--name=value`) that an
//! argument parser like clap reads, so both spellings work. Booleans are parsed as Go's
//! `strconv.ParseBool` does ([`parse_bool`]).

use std::ffi::OsString;

/// A flag the program knows: its long name and whether it takes a value that must be given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownFlag {
    /// The name without dashes.
    pub name: String,
    /// `-name value` takes the next token as the value.
    pub takes_value: bool,
}

/// A command line that cannot be understood, with the flag as it was spelled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// Not one of the program's flags.
    #[error("flag provided but not defined: {0}")]
    Unknown(String),
    /// A flag that needs a value came last.
    #[error("flag needs an argument: {0}")]
    MissingValue(String),
}

/// Rewrites a Go-style command line into the GNU form.
///
/// The first token (the program) is kept. Every flag token becomes `--name` or `--name=value`; the value of
/// a `-name value` pair is attached with `=` so that values starting with `-` survive. `-h` stays `-h` (a
/// parser's short help) and `-help`/`--help` become `--help`. `--` and everything after it, the lone `-`
/// (standard input), other positional arguments and tokens that are not UTF-8 are left alone.
pub fn normalize(args: Vec<OsString>, known: &[KnownFlag]) -> Result<Vec<OsString>, FlagError> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    out.extend(iter.next());
    while let Some(arg) = iter.next() {
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            out.extend(iter);
            break;
        }
        let Some(body) = text.strip_prefix("--").or_else(|| text.strip_prefix('-')) else {
            out.push(arg);
            continue;
        };
        if body.is_empty() {
            out.push(arg);
            continue;
        }
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        match name {
            "h" => {
                out.push("-h".into());
                continue;
            }
            "help" => {
                out.push("--help".into());
                continue;
            }
            _ => {}
        }
        let Some(flag) = known.iter().find(|f| f.name == name) else {
            return Err(FlagError::Unknown(text.to_owned()));
        };
        match value {
            Some(value) => out.push(format!("--{name}={value}").into()),
            None if flag.takes_value => {
                let value = iter
                    .next()
                    .ok_or_else(|| FlagError::MissingValue(text.to_owned()))?;
                let mut joined = OsString::from(format!("--{name}="));
                joined.push(value);
                out.push(joined);
            }
            None => out.push(format!("--{name}").into()),
        }
    }
    Ok(out)
}

/// The long flags of a clap command (not of its subcommands), and whether each takes a value that must be
/// given.
#[cfg(feature = "clap")]
pub fn known_flags(cmd: &clap::Command) -> Vec<KnownFlag> {
    cmd.get_arguments()
        .filter_map(|arg| {
            let takes_value = arg
                .get_num_args()
                .is_some_and(|n| n.takes_values() && n.min_values() > 0);
            arg.get_long().map(|name| KnownFlag {
                name: name.to_owned(),
                takes_value,
            })
        })
        .collect()
}

/// A boolean as Go's `strconv.ParseBool` reads it.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("{value:?} is not a boolean (use true or false)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<KnownFlag> {
        [("port", true), ("verbose", false)]
            .into_iter()
            .map(|(name, takes_value)| KnownFlag {
                name: name.to_owned(),
                takes_value,
            })
            .collect()
    }

    fn run(args: &[&str]) -> Result<Vec<String>, FlagError> {
        let args = args.iter().map(OsString::from).collect();
        normalize(args, &known()).map(|v| v.into_iter().map(|a| a.into_string().unwrap()).collect())
    }

    #[test]
    fn go_spellings_become_gnu() {
        assert_eq!(
            run(&[
                "p",
                "-port",
                "-1",
                "--verbose",
                "-port=8080",
                "pos",
                "-",
                "-h",
                "-help"
            ])
            .unwrap(),
            [
                "p",
                "--port=-1",
                "--verbose",
                "--port=8080",
                "pos",
                "-",
                "-h",
                "--help"
            ]
        );
        assert_eq!(
            run(&["p", "--", "-nope", "-port"]).unwrap(),
            ["p", "--", "-nope", "-port"]
        );
    }

    #[test]
    fn unknown_and_incomplete_flags_name_the_spelling() {
        assert_eq!(run(&["p", "-nope=1"]), Err(FlagError::Unknown("-nope=1".into())));
        assert_eq!(run(&["p", "-port"]), Err(FlagError::MissingValue("-port".into())));
        assert_eq!(
            FlagError::Unknown("-x".into()).to_string(),
            "flag provided but not defined: -x"
        );
    }

    #[test]
    fn booleans_as_go() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Ok(false));
        }
        assert!(parse_bool("yes").is_err());
    }
}
