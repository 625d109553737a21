//! Logging for the operator, shaped like Flagger's zap logger.
//!
//! **Flag mapping.** Flagger's `-zap-encoding json|console` and `-log-level` map as follows:
//!
//! | Flagger | flagger-rs |
//! |---|---|
//! | `-zap-encoding=json` (default) | [`LogFormat::Json`]: one JSON object per line on stderr |
//! | `-zap-encoding=console` | [`LogFormat::Plain`]: tracing's human-readable text, no colours |
//! | `-log-level=debug` (default) | [`LogLevel::Debug`]: our crates (`flagger*` targets) at debug, dependencies at info |
//! | `-log-level=info` | [`LogLevel::Info`] |
//! | `-log-level=warn` / `warning` | [`LogLevel::Warn`] |
//! | `-log-level=error` / `fatal` / `panic` | [`LogLevel::Error`] (zap's fatal/panic levels only ever log less) |
//!
//! Flagger's debug level is its own logger's: client-go logs through klog separately. Hence debug does not
//! open up kube/hyper's debug output. `RUST_LOG`, when set, replaces the level's filter at start-up (for
//! debugging flagger-rs itself); [`LogHandle::set_level`] replaces whatever filter is active.
//!
//! **JSON lines.** Zap's production keys, in zap's order: `level` (`debug`, `info`, `warn`, `error`), `ts`
//! (ISO 8601 UTC with milliseconds, zap's `ISO8601TimeEncoder`), `caller` (`dir/file.rs:line`), `msg`, then
//! the fields of the enclosing spans (outermost first) and of the event, flattened to the top level. Enter
//! [`canary_span`] around work on a canary and every line carries `"canary":"<name>.<namespace>"` as Flagger's
//! do.

use std::fmt::Write as _;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// Output format of the log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Zap-shaped JSON lines (`-zap-encoding=json`).
    Json,
    /// Human-readable text (`-zap-encoding=console`).
    Plain,
}

impl LogFormat {
    /// Parses Flagger's `-zap-encoding` (`json`, `console`); `plain` is accepted as a synonym of `console`.
    pub fn from_zap_encoding(encoding: &str) -> Option<Self> {
        match encoding {
            "json" => Some(Self::Json),
            "console" | "plain" => Some(Self::Plain),
            _ => None,
        }
    }
}

/// Log verbosity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// `debug`: our crates at debug, dependencies at info.
    Debug,
    /// `info`.
    Info,
    /// `warn` / `warning`.
    Warn,
    /// `error` (and zap's `fatal`, `panic`).
    Error,
}

impl LogLevel {
    /// Parses Flagger's `-log-level` values.
    pub fn from_flagger(level: &str) -> Option<Self> {
        match level {
            "debug" => Some(Self::Debug),
            "info" => Some(Self::Info),
            "warn" | "warning" => Some(Self::Warn),
            "error" | "fatal" | "panic" => Some(Self::Error),
            _ => None,
        }
    }

    /// The `EnvFilter` directives for this level.
    pub fn directives(self) -> &'static str {
        match self {
            Self::Debug => "info,flagger=debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }

    fn filter(self) -> EnvFilter {
        EnvFilter::new(self.directives())
    }
}

/// Errors of [`init`] and [`LogHandle::set_level`].
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A global subscriber was installed already.
    #[error("the global logger is already initialised: {0}")]
    AlreadyInitialised(String),
    /// The filter could not be swapped (the subscriber is gone).
    #[error("cannot change the log level: {0}")]
    Reload(#[from] reload::Error),
}

/// Changes the log level of the running process.
#[derive(Clone, Debug)]
pub struct LogHandle(reload::Handle<EnvFilter, Registry>);

impl LogHandle {
    /// Replaces the active filter with `level`'s.
    pub fn set_level(&self, level: LogLevel) -> Result<(), LogError> {
        self.0.reload(level.filter())?;
        Ok(())
    }
}

/// Installs the global subscriber writing to stderr (as Flagger's zap logger does); `RUST_LOG`, when set,
/// replaces the level's filter.
pub fn init(format: LogFormat, level: LogLevel) -> Result<LogHandle, LogError> {
    init_with(format, level, std::env::var("RUST_LOG").ok())
}

/// [`init`] with an explicit filter override (`EnvFilter` directives) instead of `RUST_LOG`.
pub fn init_with(
    format: LogFormat,
    level: LogLevel,
    filter_override: Option<String>,
) -> Result<LogHandle, LogError> {
    let filter = filter_override
        .filter(|v| !v.trim().is_empty())
        .map_or_else(|| level.filter(), EnvFilter::new);
    let (filter, handle) = reload::Layer::new(filter);
    let output = match format {
        LogFormat::Json => json_layer(std::io::stderr).boxed(),
        LogFormat::Plain => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .map_err(|e| LogError::AlreadyInitialised(e.to_string()))?;
    Ok(LogHandle(handle))
}

/// The span to enter around work on one canary: adds `"canary":"<name>.<namespace>"` to every line inside.
pub fn canary_span(name: &str, namespace: &str) -> tracing::Span {
    tracing::info_span!("canary", canary = %format_args!("{name}.{namespace}"))
}

/// The zap-shaped JSON layer, writing to `writer`.
pub fn json_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(ZapJson)
        .with_writer(writer)
}

/// Formats events as zap-like JSON lines (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct ZapJson;

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        _ => "debug",
    }
}

/// Zap's `ShortCallerEncoder`: the last directory and the file name.
fn short_caller(file: &str, line: Option<u32>) -> String {
    let mut parts = file.rsplitn(3, ['/', '\\']);
    let name = parts.next().unwrap_or(file);
    let short = match parts.next() {
        Some(dir) => format!("{dir}/{name}"),
        None => name.to_owned(),
    };
    match line {
        Some(line) => format!("{short}:{line}"),
        None => short,
    }
}

impl<S, N> FormatEvent<S, N> for ZapJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(formatted) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(span_fields)) = serde_json::from_str::<Value>(formatted.as_str())
                {
                    fields.extend(span_fields);
                }
            }
        }
        let mut visitor = FieldVisitor {
            fields: &mut fields,
            message: String::new(),
        };
        event.record(&mut visitor);
        let message = std::mem::take(&mut visitor.message);

        let ts = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let mut line = String::with_capacity(256);
        let json = |v: &str| serde_json::to_string(v).map_err(|_| std::fmt::Error);
        write!(line, "{{\"level\":{}", json(level_name(meta.level()))?)?;
        write!(line, ",\"ts\":{}", json(&ts)?)?;
        if let Some(file) = meta.file() {
            write!(line, ",\"caller\":{}", json(&short_caller(file, meta.line()))?)?;
        }
        write!(line, ",\"msg\":{}", json(&message)?)?;
        for (key, value) in fields {
            if matches!(key.as_str(), "level" | "ts" | "caller" | "msg") {
                continue;
            }
            let value = serde_json::to_string(&value).map_err(|_| std::fmt::Error)?;
            write!(line, ",{}:{value}", json(&key)?)?;
        }
        line.push('}');
        writeln!(writer, "{line}")
    }
}

struct FieldVisitor<'a> {
    fields: &'a mut Map<String, Value>,
    message: String,
}

impl FieldVisitor<'_> {
    fn insert(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.fields
                .insert(field.name().trim_start_matches("r#").to_owned(), value);
        }
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(
            field,
            serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
        );
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.insert(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.insert(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    fn lines(buffer: &Buffer) -> Vec<Value> {
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn json_lines_are_zap_shaped_with_the_canary_field() {
        let buffer = Buffer::default();
        let (filter, handle) = reload::Layer::new(LogLevel::Info.filter());
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(json_layer(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside");
            let span = canary_span("podinfo", "test");
            let _entered = span.enter();
            tracing::info!(weight = 10, "Advance podinfo.test canary weight 10");
            tracing::debug!("hidden at info");
            handle.reload(LogLevel::Debug.filter()).unwrap();
            tracing::debug!(ok = true, "shown after reload");
        });
        let lines = lines(&buffer);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0]["msg"], "outside");
        assert!(lines[0].get("canary").is_none());
        assert_eq!(lines[1]["level"], "info");
        assert_eq!(lines[1]["msg"], "Advance podinfo.test canary weight 10");
        assert_eq!(lines[1]["canary"], "podinfo.test");
        assert_eq!(lines[1]["weight"], 10);
        let caller = lines[1]["caller"].as_str().unwrap();
        assert!(caller.starts_with("src/logging.rs:"), "{caller}");
        let ts = lines[1]["ts"].as_str().unwrap();
        assert!(
            ts.parse::<jiff::Timestamp>().is_ok() && ts.ends_with('Z') && ts.len() == 24,
            "{ts}"
        );
        assert_eq!(lines[2]["level"], "debug");
        assert_eq!(lines[2]["ok"], true);
        assert_eq!(lines[2]["canary"], "podinfo.test");
        // zap's key order: level, ts, caller, msg.
        let raw = buffer.0.lock().unwrap().clone();
        let first = String::from_utf8(raw).unwrap();
        assert!(first.starts_with("{\"level\":\"info\",\"ts\":\""), "{first}");
    }

    #[test]
    fn flag_values_map_to_formats_and_levels() {
        assert_eq!(LogFormat::from_zap_encoding("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::from_zap_encoding("console"), Some(LogFormat::Plain));
        assert_eq!(LogFormat::from_zap_encoding("xml"), None);
        assert_eq!(LogLevel::from_flagger("warning"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::from_flagger("fatal"), Some(LogLevel::Error));
        assert_eq!(LogLevel::from_flagger("trace"), None);
        assert_eq!(LogLevel::Debug.directives(), "info,flagger=debug");
        assert_eq!(
            short_caller("crates/flagger-core/src/scheduler.rs", Some(7)),
            "src/scheduler.rs:7"
        );
        assert_eq!(short_caller("main.rs", None), "main.rs");
    }
}
