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

/// Columns of `lendfusion_functions()`.
pub fn schema() -> SchemaRef {
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
        functions_table()
    }
}

/// The table `lendfusion_functions()` returns (also how a distributed plan rebuilds it).
pub fn functions_table() -> Result<Arc<dyn TableProvider>> {
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

/// The functions reference (`docs/functions.md`), generated from the registrations.
pub fn markdown() -> String {
    let infos = function_infos();
    let mut out = String::from(
        "# lendfusion SQL functions\n\n\
         Generated from the code by `LENDFUSION_UPDATE_DOCS=1 cargo test -p lendfusion-udfs docs`; a test \
         fails when this file is stale. The same text is queryable: \
         `SELECT * FROM lendfusion_functions()`.\n\n\
         Conventions (SPEC §1): *invalid* means NULL, NaN or ±infinity; no function returns NaN or \
         infinity. Numeric arguments accept integers, floats and decimals.\n",
    );
    let mut family = String::new();
    for info in &infos {
        if info.family != family {
            family = info.family.clone();
            out.push_str(&format!(
                "\n## {family}\n\n| function | kind |\n|---|---|\n"
            ));
            for f in infos.iter().filter(|f| f.family == family) {
                out.push_str(&format!("| [`{}`](#{}) | {} |\n", f.name, f.name, f.kind));
            }
        }
        out.push_str(&format!(
            "\n### {}\n\n`{}`\n\n{}\n",
            info.name, info.signature, info.description
        ));
        if !info.arguments.is_empty() {
            out.push_str("\nArguments:\n\n");
            for line in info.arguments.lines() {
                let (name, text) = line.split_once(": ").unwrap_or((line, ""));
                out.push_str(&format!("- `{name}`: {text}\n"));
            }
        }
        if !info.example.is_empty() {
            out.push_str(&format!("\nExample:\n\n{}\n", info.example));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_functions_md_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/functions.md");
        let generated = super::markdown();
        if std::env::var_os("LENDFUSION_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &generated).expect("write docs/functions.md");
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "docs/functions.md is stale: run `LENDFUSION_UPDATE_DOCS=1 cargo test -p lendfusion-udfs docs`"
        );
    }

    #[test]
    fn every_function_is_documented() {
        for info in super::function_infos() {
            assert!(!info.description.is_empty(), "{}", info.name);
            assert!(!info.signature.is_empty(), "{}", info.name);
            assert!(!info.example.is_empty(), "{}", info.name);
            assert!(!info.family.is_empty(), "{}", info.name);
        }
    }
}
