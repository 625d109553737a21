//! Being written.

/// The controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Not built yet.
    #[error("not implemented")]
    NotImplemented,
}

/// Runs the operator.
pub async fn run() -> Result<(), RunError> {
    Err(RunError::NotImplemented)
}
