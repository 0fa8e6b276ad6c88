//! The deploy files: every example configuration loads; compose.yaml follows the Compose
//! specification (and `docker compose config` accepts it where that tool exists); every
//! Kubernetes manifest passes the Kubernetes schema; every lendfusion command line in them is
//! accepted by the binary with the configuration and environment its container gets; ports,
//! probes and grace periods agree with the configuration.

use std::path::{Path, PathBuf};

use crate::support::cluster::lendfusion_bin;
use crate::support::python::run_script;

/// The Compose schema's carrier, downloaded by `scripts/setup-python.sh`.
fn compose_spec_wheel() -> PathBuf {
    let tools = std::env::var_os("LENDFUSION_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/lendfusion-tools"))
        })
        .expect("HOME or LENDFUSION_TOOLS");
    let wheel = tools.join("compose-spec/docker_compose-1.29.2-py2.py3-none-any.whl");
    assert!(
        wheel.is_file(),
        "{} is missing: run scripts/setup-python.sh (make test does)",
        wheel.display()
    );
    wheel
}

#[test]
fn deploy_files_are_valid_and_agree_with_the_binary() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = run_script(
        "validate_deploy.py",
        &[
            &repo.display().to_string(),
            &lendfusion_bin().display().to_string(),
            &compose_spec_wheel().display().to_string(),
        ],
    );
    eprintln!("{out}");
    assert!(out.contains("deploy files valid"), "{out}");
}
