//! Every lendfusion SQL function, one file each, grouped by family; [`register_all`] is the one
//! registration point the session recipe calls.

use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;

/// Register every lendfusion function on a registry (a `SessionState` or a context).
pub fn register_all(registry: &mut dyn FunctionRegistry) -> Result<()> {
    let _ = registry;
    Ok(())
}
