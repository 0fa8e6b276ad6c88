//! Errors of the core crate, each with a kind that maps to a gRPC status later on.

use datafusion::error::DataFusionError;

/// Result alias for the core crate.
pub type Result<T, E = LendfusionError> = std::result::Result<T, E>;

/// What went wrong, phrased so that a person can act on it.
#[derive(Debug, thiserror::Error)]
pub enum LendfusionError {
    /// Bad configuration (file, environment or flags).
    #[error("configuration error: {0}")]
    Config(String),
    /// The object store could not be reached or refused the request.
    #[error("storage error: {0}")]
    Storage(String),
    /// A file in the dataset is unreadable or does not match the table layout.
    #[error("bad data file {file}: {message}")]
    BadFile {
        /// Full URL of the offending file.
        file: String,
        /// What is wrong with it.
        message: String,
    },
    /// A table that does not exist under the dataset root.
    #[error("table not found: {0}")]
    TableNotFound(String),
    /// A cluster role could not start or lost its peers.
    #[error("cluster error: {0}")]
    Cluster(String),
    /// An error from the query engine.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

impl From<LendfusionError> for DataFusionError {
    fn from(e: LendfusionError) -> Self {
        match e {
            LendfusionError::DataFusion(inner) => inner,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}
