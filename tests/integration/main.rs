//! Cross-crate integration tests, one binary with a module per area.

mod support;

mod bad_input;
mod bench;
mod cluster;
mod cluster_faults;
mod crosscheck;
mod demo;
mod deploy;
mod factor_panel;
mod flight;
mod front_door;
mod gaps;
mod generated_data;
mod joins;
mod operations;
mod pruning;
mod report;
mod s3;
