//! Cross-crate integration tests, one binary with a module per area.

mod support;

mod bad_input;
mod crosscheck;
mod generated_data;
mod pruning;
mod s3;
