//! lendfusion core: configuration, object stores, the table catalog and the one session-state
//! recipe that every role (embedded SQL, coordinator, worker, demo, tests) uses.

pub mod aligned_join;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod config_reference;
pub mod cross_sections;
pub mod diagnose;
pub mod error;
pub mod error_kind;
pub mod factors;
pub mod memory_fetch;
pub mod object_stores;
pub mod ops;
pub mod query;
pub mod results;
pub mod schema;
pub mod server_config;
pub mod session;
pub mod strict_adapter;
pub mod tables;
pub mod views;

pub use config::{Layout, LendfusionConfig, S3Settings};
pub use error::{LendfusionError, Result};
pub use ops::{LogFormat, OpsSettings};
pub use server_config::{AuthSettings, ServerSettings, UserEntry};
pub use session::{session_config, session_context, session_context_with, session_state};
