//! `lendfusion config`: the effective configuration (secrets hidden), or the reference of
//! every key.

use std::process::ExitCode;

use clap::Args;
use lendfusion_core::LendfusionConfig;
use lendfusion_core::config_reference::configuration_reference;
use lendfusion_core::ops::metrics::metrics_reference;

use crate::CliResult;

/// Options of `lendfusion config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print the reference of every key (Markdown) instead of the effective configuration.
    #[arg(long)]
    reference: bool,
    /// Print the reference of every metric of the operations endpoints (Markdown).
    #[arg(long, conflicts_with = "reference")]
    metrics: bool,
}

/// Shown instead of a secret.
const HIDDEN: &str = "<hidden>";

pub fn run(args: ConfigArgs, config: LendfusionConfig) -> CliResult {
    if args.reference {
        print!("{}", configuration_reference());
        return Ok(ExitCode::SUCCESS);
    }
    if args.metrics {
        print!("{}", metrics_reference());
        return Ok(ExitCode::SUCCESS);
    }
    config.cluster.validate()?;
    config.server.validate()?;
    config.ops.validate()?;
    let mut shown = config;
    for secret in [
        &mut shown.s3.secret_access_key,
        &mut shown.s3.session_token,
        &mut shown.cluster.secret,
    ] {
        if secret.is_some() {
            *secret = Some(HIDDEN.into());
        }
    }
    for user in &mut shown.auth.users {
        user.password_hash = HIDDEN.into();
    }
    let text =
        toml::to_string(&shown).map_err(|e| format!("cannot print the configuration: {e}"))?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
