//! The Python interpreter with the reference packages (numpy, pandas, scipy, pyarrow).
//!
//! `$LENDFUSION_PYTHON`, or the virtual environment `scripts/test.sh` creates under
//! `~/.cache/lendfusion-tools/venv`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Locate the interpreter or fail with the command that sets it up.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("LENDFUSION_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/lendfusion-tools/venv/bin/python"));
    match venv {
        Some(p) if p.is_file() => p,
        _ => panic!(
            "the cross-checks need Python with tests/python/requirements.txt: run `scripts/test.sh` \
             (or `make test`) or set LENDFUSION_PYTHON"
        ),
    }
}

/// Run a script from `tests/python/` with arguments; panics with its output unless it exits 0.
pub fn run_script(script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let output = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
