//! `lendfusion_functions()`: a table of every lendfusion function with its signature and
//! documentation (SPEC §1), built from the same registrations the session uses.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::common::plan_err;
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::Result;
use datafusion::logical_expr::Documentation;

/// One function's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInfo {
    /// SQL name.
    pub name: String,
    /// `scalar`, `window` or `aggregate`.
    pub kind: &'static str,
    /// Documentation section (the family).
    pub family: String,
    /// Call syntax.
    pub signature: String,
    /// What it computes.
    pub description: String,
    /// Arguments as `name: meaning` lines.
    pub arguments: String,
    /// SQL example.
    pub example: String,
}

impl FunctionInfo {
    /// From a function's documentation.
    pub fn new(name: &str, kind: &'static str, doc: Option<&Documentation>) -> Self {
        let (family, signature, description, arguments, example) = match doc {
            Some(d) => (
                d.doc_section.label.to_string(),
                d.syntax_example.clone(),
                d.description.clone(),
                d.arguments
                    .iter()
                    .flatten()
                    .map(|(n, t)| format!("{n}: {t}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                d.sql_example.clone().unwrap_or_default(),
            ),
            None => Default::default(),
        };
        Self {
            name: name.to_string(),
            kind,
            family,
            signature,
            description,
            arguments,
            example,
        }
    }
}

/// Every lendfusion function, sorted by family then name.
pub fn function_infos() -> Vec<FunctionInfo> {
    let mut out: Vec<FunctionInfo> = crate::scalar_functions()
        .iter()
        .map(|f| FunctionInfo::new(f.name(), "scalar", f.documentation()))
        .chain(
            crate::window_functions()
                .iter()
                .map(|f| FunctionInfo::new(f.name(), "window", f.documentation())),
        )
        .chain(
            crate::aggregate_functions()
                .iter()
                .map(|f| FunctionInfo::new(f.name(), "aggregate", f.documentation())),
        )
        .collect();
    out.sort_by(|a, b| (&a.family, &a.name).cmp(&(&b.family, &b.name)));
    out
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(
        [
            "name",
            "kind",
            "family",
            "signature",
            "description",
            "arguments",
            "example",
        ]
        .map(|n| Field::new(n, DataType::Utf8, false))
        .to_vec(),
    ))
}

/// The table function behind `SELECT * FROM lendfusion_functions()`.
#[derive(Debug, Default)]
pub struct LendfusionFunctions;

impl TableFunctionImpl for LendfusionFunctions {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return plan_err!("lendfusion_functions() takes no arguments");
        }
        let infos = function_infos();
        let column = |f: fn(&FunctionInfo) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(infos.iter().map(f)))
        };
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                column(|i| &i.name),
                column(|i| i.kind),
                column(|i| &i.family),
                column(|i| &i.signature),
                column(|i| &i.description),
                column(|i| &i.arguments),
                column(|i| &i.example),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(schema(), vec![vec![batch]])?))
    }
}
