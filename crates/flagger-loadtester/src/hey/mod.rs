//! A built-in load generator compatible with [`hey`](https://github.com/rakyll/hey)'s command line and
//! summary, so that `cmd: "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/"` works without a `hey`
//! binary.
//!
//! Supported flags, with hey's defaults and meanings: `-n` requests (200), `-c` workers (50), `-q` rate
//! limit per worker in queries per second (none), `-z` duration (when set `-n` is ignored), `-m` method
//! (GET), `-H` header (repeatable), `-d` body, `-D` body file, `-T` content type (`text/html`), `-A` Accept,
//! `-a` basic auth `user:pass`, `-U` User-Agent prefix, `-t` timeout per request in seconds (20, 0 = none),
//! `-host` Host header, `-x` proxy, `-h2`, `-disable-compression`, `-disable-keepalive`,
//! `-disable-redirects`, `-cpus` (accepted, ignored). Flags are parsed like Go's `flag` package: one or
//! two dashes, `-name value` or `-name=value`, parsing stops at the URL.
//!
//! `-o` (CSV or template output) is not built in: such a command runs through `sh -c` (a real `hey`).

mod report;
mod words;
mod work;

use std::time::Duration;

use regex::Regex;

pub use report::Report;
pub use work::{RunError, run};

/// hey's default User-Agent, appended to a custom one.
pub const HEY_USER_AGENT: &str = "hey/0.0.1";

/// A `hey` command line that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A flag that hey does not define.
    #[error("hey: flag provided but not defined: -{0}")]
    UnknownFlag(String),
    /// A flag that needs a value came last.
    #[error("hey: flag needs an argument: -{0}")]
    MissingValue(String),
    /// `---x`, `-=x`.
    #[error("hey: bad flag syntax: {0}")]
    BadSyntax(String),
    /// A value that does not parse.
    #[error("hey: invalid value {value:?} for flag -{flag}: {reason}")]
    InvalidValue {
        /// The flag.
        flag: String,
        /// The value given.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// No URL.
    #[error("hey: missing the URL (usage: hey [options...] <url>)")]
    MissingUrl,
    /// hey's own usage errors (`-n cannot be less than -c.`, ...).
    #[error("hey: {0}")]
    Usage(String),
}

/// What a `hey ...` command does.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The URL to load.
    pub url: url::Url,
    /// HTTP method (upper case).
    pub method: String,
    /// Request headers, in order (Content-Type, `-H`, Accept, User-Agent); a later one replaces an earlier
    /// one of the same name.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// Basic authentication.
    pub basic_auth: Option<(String, String)>,
    /// `-host`: the Host header.
    pub host: Option<String>,
    /// Total requests (`-n`); ignored when `duration` is set.
    pub requests: u64,
    /// Workers (`-c`).
    pub concurrency: u64,
    /// Requests per second per worker; 0 = unlimited.
    pub qps: f64,
    /// `-z`.
    pub duration: Option<Duration>,
    /// Per-request timeout; `None` = unlimited.
    pub timeout: Option<Duration>,
    /// `-h2`.
    pub h2: bool,
    /// `-disable-compression`.
    pub disable_compression: bool,
    /// `-disable-keepalive`.
    pub disable_keepalive: bool,
    /// `-disable-redirects`.
    pub disable_redirects: bool,
    /// `-x`: an HTTP proxy.
    pub proxy: Option<String>,
}

/// How a command starting with `hey` is run.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// By the built-in generator.
    Native(Box<Options>),
    /// Through `sh -c` (shell syntax, `-o`, or not a `hey` command at all).
    Shell,
}

/// Decides how to run `command`: natively when it is a plain `hey` invocation the built-in generator
/// supports, through the shell otherwise. A `hey` command with bad flags is an error.
pub fn plan(command: &str) -> Result<Plan, ParseError> {
    let Some(words) = words::split(command) else {
        return Ok(Plan::Shell);
    };
    match words.split_first() {
        Some((first, args)) if first == "hey" => {
            parse(args).map(|o| o.map_or(Plan::Shell, |o| Plan::Native(Box::new(o))))
        }
        _ => Ok(Plan::Shell),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Value,
}

const FLAGS: &[(&str, Kind)] = &[
    ("m", Kind::Value),
    ("h", Kind::Value),
    ("d", Kind::Value),
    ("D", Kind::Value),
    ("A", Kind::Value),
    ("T", Kind::Value),
    ("a", Kind::Value),
    ("host", Kind::Value),
    ("U", Kind::Value),
    ("o", Kind::Value),
    ("c", Kind::Value),
    ("n", Kind::Value),
    ("q", Kind::Value),
    ("t", Kind::Value),
    ("z", Kind::Value),
    ("h2", Kind::Bool),
    ("cpus", Kind::Value),
    ("disable-compression", Kind::Bool),
    ("disable-keepalive", Kind::Bool),
    ("disable-redirects", Kind::Bool),
    ("x", Kind::Value),
    ("H", Kind::Value),
];

fn invalid(flag: &str, value: &str, reason: impl ToString) -> ParseError {
    ParseError::InvalidValue {
        flag: flag.to_owned(),
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

fn go_bool(flag: &str, value: &str) -> Result<bool, ParseError> {
    flagger_core::goflag::parse_bool(value).map_err(|_| invalid(flag, value, "parse error"))
}

fn int(flag: &str, value: &str) -> Result<i64, ParseError> {
    value.parse().map_err(|_| invalid(flag, value, "parse error"))
}

/// Parses hey's arguments (after `hey`). `Ok(None)`: valid, but only a real `hey` can run it (`-o`).
pub fn parse(args: &[String]) -> Result<Option<Options>, ParseError> {
    let mut values: Vec<(&'static str, String)> = Vec::new();
    let mut rest = args.iter();
    let mut url = None;
    while let Some(arg) = rest.next() {
        if arg == "--" {
            url = rest.next();
            break;
        }
        let body = match arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) {
            Some(body) if !body.is_empty() => body,
            _ => {
                url = Some(arg);
                break;
            }
        };
        if body.starts_with('-') || body.starts_with('=') {
            return Err(ParseError::BadSyntax(arg.clone()));
        }
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        if name == "help" {
            return Err(ParseError::Usage("help requested".to_owned()));
        }
        let Some(&(flag, kind)) = FLAGS.iter().find(|(f, _)| *f == name) else {
            return Err(ParseError::UnknownFlag(name.to_owned()));
        };
        let value = match (kind, value) {
            (Kind::Bool, None) => "true".to_owned(),
            (Kind::Bool, Some(v)) => {
                go_bool(flag, &v)?;
                v
            }
            (Kind::Value, Some(v)) => v,
            (Kind::Value, None) => rest
                .next()
                .cloned()
                .ok_or_else(|| ParseError::MissingValue(flag.to_owned()))?,
        };
        values.push((flag, value));
    }
    let url = url.ok_or(ParseError::MissingUrl)?;

    // Go's flag package: the last occurrence wins, except for the repeatable -H.
    let last = |flag: &str| {
        values
            .iter()
            .rev()
            .find(|(f, _)| *f == flag)
            .map(|(_, v)| v.as_str())
    };
    let boolean = |flag: &str| last(flag).map_or(Ok(false), |v| go_bool(flag, v));
    if last("o").is_some_and(|o| !o.is_empty()) {
        return Ok(None);
    }
    if let Some(cpus) = last("cpus") {
        int("cpus", cpus)?;
    }
    let n = last("n").map_or(Ok(200), |v| int("n", v))?;
    let c = last("c").map_or(Ok(50), |v| int("c", v))?;
    let q = match last("q") {
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|q| !q.is_nan())
            .ok_or_else(|| invalid("q", v, "parse error"))?,
        None => 0.0,
    };
    let t = last("t").map_or(Ok(20), |v| int("t", v))?;
    let duration = match last("z") {
        Some(v) => {
            // Go's flag.Duration: a negative duration is accepted and means "no duration".
            let d = flagger_core::duration::parse_go_duration_nanos(v).map_err(|e| invalid("z", v, e))?;
            (d > 0).then(|| Duration::from_nanos(d.unsigned_abs()))
        }
        None => None,
    };
    let (requests, concurrency) = if duration.is_some() {
        if c <= 0 {
            return Err(ParseError::Usage("-c cannot be smaller than 1.".to_owned()));
        }
        (u64::from(u32::MAX >> 1), c.unsigned_abs())
    } else {
        if n <= 0 || c <= 0 {
            return Err(ParseError::Usage(
                "-n and -c cannot be smaller than 1.".to_owned(),
            ));
        }
        if n < c {
            return Err(ParseError::Usage("-n cannot be less than -c.".to_owned()));
        }
        (n.unsigned_abs(), c.unsigned_abs())
    };

    let parsed_url =
        url::Url::parse(url).map_err(|e| ParseError::Usage(format!("invalid URL {url:?}: {e}")))?;
    if !matches!(parsed_url.scheme(), "http" | "https") {
        return Err(ParseError::Usage(format!(
            "invalid URL {url:?}: unsupported protocol scheme {:?}",
            parsed_url.scheme()
        )));
    }
    let method = last("m").unwrap_or("GET").to_uppercase();
    if method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(ParseError::Usage(format!("net/http: invalid method {method:?}")));
    }

    let mut headers: Vec<(String, String)> = Vec::new();
    fn set(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        headers.push((name.to_owned(), value.to_owned()));
    }
    set(&mut headers, "Content-Type", last("T").unwrap_or("text/html"));
    if last("h").is_some_and(|h| !h.is_empty()) {
        return Err(ParseError::Usage(
            "Flag '-h' is deprecated, please use '-H' instead.".to_owned(),
        ));
    }
    let header_re = Regex::new(r"^([\w-]+):\s*(.+)").map_err(|e| ParseError::Usage(e.to_string()))?;
    for (_, h) in values.iter().filter(|(f, _)| *f == "H") {
        let caps = header_re
            .captures(h)
            .ok_or_else(|| ParseError::Usage(format!("could not parse the provided input; input = {h}")))?;
        set(&mut headers, &caps[1], &caps[2]);
    }
    if let Some(accept) = last("A").filter(|a| !a.is_empty()) {
        set(&mut headers, "Accept", accept);
    }
    let basic_auth = match last("a").filter(|a| !a.is_empty()) {
        Some(a) => {
            let re = Regex::new(r"^(.+):([^\s].+)").map_err(|e| ParseError::Usage(e.to_string()))?;
            let caps = re.captures(a).ok_or_else(|| {
                ParseError::Usage(format!("could not parse the provided input; input = {a}"))
            })?;
            Some((caps[1].to_owned(), caps[2].to_owned()))
        }
        None => None,
    };
    let custom_ua = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("User-Agent"))
        .map(|(_, v)| v.clone());
    let mut ua = match custom_ua {
        Some(ua) => format!("{ua} {HEY_USER_AGENT}"),
        None => HEY_USER_AGENT.to_owned(),
    };
    if let Some(u) = last("U").filter(|u| !u.is_empty()) {
        ua = format!("{u} {HEY_USER_AGENT}");
    }
    set(&mut headers, "User-Agent", &ua);

    let mut body = last("d").map(|d| d.as_bytes().to_vec()).unwrap_or_default();
    if let Some(file) = last("D").filter(|d| !d.is_empty()) {
        body = std::fs::read(file).map_err(|e| ParseError::Usage(format!("open {file}: {e}")))?;
    }
    let proxy = match last("x").filter(|x| !x.is_empty()) {
        Some(x) => {
            let with_scheme = if x.contains("://") {
                x.to_owned()
            } else {
                format!("http://{x}")
            };
            url::Url::parse(&with_scheme).map_err(|e| invalid("x", x, e))?;
            Some(with_scheme)
        }
        None => None,
    };
    Ok(Some(Options {
        url: parsed_url,
        method,
        headers,
        body,
        basic_auth,
        host: last("host").filter(|h| !h.is_empty()).map(str::to_owned),
        requests,
        concurrency,
        qps: q,
        duration,
        timeout: u64::try_from(t).ok().filter(|t| *t > 0).map(Duration::from_secs),
        h2: boolean("h2")?,
        disable_compression: boolean("disable-compression")?,
        disable_keepalive: boolean("disable-keepalive")?,
        disable_redirects: boolean("disable-redirects")?,
        proxy,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(cmd: &str) -> Options {
        match plan(cmd) {
            Ok(Plan::Native(o)) => *o,
            other => panic!("{cmd:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_heys() {
        let o = native("hey http://127.0.0.1:1/");
        assert_eq!((o.requests, o.concurrency, o.qps), (200, 50, 0.0));
        assert_eq!(o.method, "GET");
        assert_eq!(o.timeout, Some(Duration::from_secs(20)));
        assert_eq!(o.duration, None);
        assert_eq!(
            o.headers,
            vec![
                ("Content-Type".to_owned(), "text/html".to_owned()),
                ("User-Agent".to_owned(), "hey/0.0.1".to_owned())
            ]
        );
    }

    #[test]
    fn flags_as_flaggers_docs_use_them() {
        let o = native("hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/");
        assert_eq!(o.duration, Some(Duration::from_secs(60)));
        assert_eq!((o.concurrency, o.qps), (2, 10.0));
        let o = native(
            r#"hey --n=10 -c 1 -m post -H "X-A: 1" -H 'User-Agent: me' -d '{"a":1}' -T application/json -t 0 -host example.com -disable-keepalive -h2=true -a u:pass http://x/ ignored"#,
        );
        assert_eq!((o.requests, o.method.as_str()), (10, "POST"));
        assert_eq!(o.body, br#"{"a":1}"#);
        assert_eq!(o.timeout, None);
        assert_eq!(o.host.as_deref(), Some("example.com"));
        assert!(o.disable_keepalive && o.h2 && !o.disable_compression);
        assert_eq!(o.basic_auth, Some(("u".to_owned(), "pass".to_owned())));
        assert_eq!(
            o.headers,
            vec![
                ("Content-Type".to_owned(), "application/json".to_owned()),
                ("X-A".to_owned(), "1".to_owned()),
                ("User-Agent".to_owned(), "me hey/0.0.1".to_owned()),
            ]
        );
    }

    #[test]
    fn errors_are_heys() {
        let err = |cmd: &str| plan(cmd).unwrap_err().to_string();
        assert_eq!(err("hey -k http://x/"), "hey: flag provided but not defined: -k");
        assert_eq!(err("hey -n"), "hey: flag needs an argument: -n");
        assert_eq!(
            err("hey -n ten http://x/"),
            "hey: invalid value \"ten\" for flag -n: parse error"
        );
        assert_eq!(err("hey -n 1 -c 2 http://x/"), "hey: -n cannot be less than -c.");
        assert_eq!(
            err("hey -n 0 http://x/"),
            "hey: -n and -c cannot be smaller than 1."
        );
        assert_eq!(
            err("hey -z 1s -c 0 http://x/"),
            "hey: -c cannot be smaller than 1."
        );
        assert_eq!(err("hey -z 1x http://x/"), err("hey -z 1x http://x/"));
        assert!(err("hey -z 1x http://x/").starts_with("hey: invalid value \"1x\" for flag -z"));
        assert_eq!(
            err("hey -c 2"),
            "hey: missing the URL (usage: hey [options...] <url>)"
        );
        assert_eq!(
            err("hey -H nocolon http://x/"),
            "hey: could not parse the provided input; input = nocolon"
        );
        assert_eq!(
            err("hey -h x http://x/"),
            "hey: Flag '-h' is deprecated, please use '-H' instead."
        );
        assert!(err("hey ftp://x/").contains("unsupported protocol scheme"));
        assert!(err("hey -D /no/such/file http://x/").starts_with("hey: open /no/such/file"));
    }

    #[test]
    fn what_goes_to_the_shell() {
        assert_eq!(plan("hey -o csv http://x/"), Ok(Plan::Shell));
        assert_eq!(plan("hey http://x/ | tee /tmp/out"), Ok(Plan::Shell));
        assert_eq!(plan("ghz --insecure x"), Ok(Plan::Shell));
        assert_eq!(plan("heyx http://x/"), Ok(Plan::Shell));
        assert_eq!(plan(""), Ok(Plan::Shell));
    }
}
