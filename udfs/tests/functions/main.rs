//! Tests of every lendfusion function through SQL: sqllogictest files, properties on arbitrary
//! input, the absence of look-ahead, and plan rewrites (sorts, joins) that must not change
//! results.

mod joins;
mod lookahead;
mod merges;
mod properties;
mod rewrites;
mod slt;
mod sorts;

use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};

/// A DataFusion session with every lendfusion function.
pub fn new_ctx() -> Result<SessionContext, DataFusionError> {
    ctx_with(SessionConfig::new().with_target_partitions(4), true)
}

/// A session with every lendfusion function under `config`, with or without our plan
/// rewrites (without: DataFusion's own plans, the reference the rewrites are checked against).
pub fn ctx_with(config: SessionConfig, rewrites: bool) -> Result<SessionContext, DataFusionError> {
    ctx_with_runtime(config, rewrites, None)
}

/// [`ctx_with`] over `runtime` (memory pool, spill folder) instead of a default one.
pub fn ctx_with_runtime(
    config: SessionConfig,
    rewrites: bool,
    runtime: Option<Arc<RuntimeEnv>>,
) -> Result<SessionContext, DataFusionError> {
    let mut builder = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features();
    if let Some(runtime) = runtime {
        builder = builder.with_runtime_env(runtime);
    }
    if rewrites {
        builder = lendfusion_udfs::with_optimizer_rules(builder);
    }
    let mut state = builder.build();
    lendfusion_udfs::register_all(&mut state)?;
    Ok(SessionContext::new_with_state(state))
}

/// A small deterministic random generator for test data.
#[derive(Debug)]
pub struct TestRng(u64);

impl TestRng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
