//! `logging::init` installs the process-wide subscriber: its own test binary, so nothing else races for it.

use flagger_telemetry::logging::{self, LogError, LogFormat, LogLevel};

#[test]
fn init_installs_once_and_the_level_reloads() {
    let handle = logging::init_with(LogFormat::Json, LogLevel::Info, None).expect("first init");
    assert!(!tracing::enabled!(tracing::Level::DEBUG), "info hides debug");
    handle.set_level(LogLevel::Debug).expect("reload");
    tracing::callsite::rebuild_interest_cache();
    assert!(tracing::enabled!(target: "flagger_core::scheduler", tracing::Level::DEBUG));
    assert!(
        !tracing::enabled!(target: "hyper::proto", tracing::Level::DEBUG),
        "dependencies stay at info"
    );
    handle.set_level(LogLevel::Error).expect("reload");
    tracing::callsite::rebuild_interest_cache();
    assert!(!tracing::enabled!(target: "flagger_core::scheduler", tracing::Level::WARN));
    assert!(matches!(
        logging::init_with(LogFormat::Plain, LogLevel::Info, Some("debug".to_owned())),
        Err(LogError::AlreadyInitialised(_))
    ));
}
