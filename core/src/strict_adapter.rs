//! Files must carry every column of their table: a file missing one is an error, not a column of
//! NULLs (DataFusion's default fills missing nullable columns with NULL, which would silently
//! turn a broken export into wrong factors).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};

/// Message prefix the diagnosis step recognises (see [`crate::diagnose`]).
pub const SCHEMA_MISMATCH: &str = "Parquet file does not match the table schema";

/// Rejects files that lack a table column or store it in an incompatible type, then adapts
/// the rest exactly like DataFusion's default adapter (casts of compatible types).
#[derive(Debug, Clone, Copy, Default)]
pub struct StrictExprAdapterFactory;

impl PhysicalExprAdapterFactory for StrictExprAdapterFactory {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> Result<Arc<dyn PhysicalExprAdapter>> {
        let problems = schema_problems(&logical_file_schema, &physical_file_schema);
        if !problems.is_empty() {
            return Err(DataFusionError::Execution(format!(
                "{SCHEMA_MISMATCH}: {}",
                problems.join("; ")
            )));
        }
        DefaultPhysicalExprAdapterFactory.create(logical_file_schema, physical_file_schema)
    }
}

/// Every way in which a file schema fails to provide the table's columns.
pub fn schema_problems(table: &SchemaRef, file: &SchemaRef) -> Vec<String> {
    let mut problems = vec![];
    for field in table.fields() {
        match file.field_with_name(field.name()) {
            Err(_) => problems.push(format!("missing column `{}`", field.name())),
            Ok(found) if !compatible(field, found.data_type()) => problems.push(format!(
                "column `{}` has type {}, expected {}",
                field.name(),
                found.data_type(),
                field.data_type()
            )),
            Ok(_) => {}
        }
    }
    problems
}

fn compatible(expected: &Field, found: &DataType) -> bool {
    let expected = expected.data_type();
    if expected == found {
        return true;
    }
    let found = match found {
        DataType::Dictionary(_, value) => value.as_ref(),
        other => other,
    };
    match expected {
        DataType::Float64 | DataType::Int8 => found.is_numeric(),
        DataType::Utf8 => matches!(
            found,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ),
        DataType::Date32 => matches!(found, DataType::Date32 | DataType::Date64),
        other => other == found,
    }
}
