//! Client SQL: planning, the read-only rule, and errors as gRPC statuses.
//!
//! Every client statement is planned against the coordinator's catalog and then checked node
//! by node (subqueries included): only reads pass. DDL (`CREATE EXTERNAL TABLE`, `CREATE
//! VIEW`, `DROP`), DML (`INSERT`), `COPY ... TO` and statements (`SET`, `PREPARE`, `EXECUTE`,
//! transactions) are refused with `PERMISSION_DENIED`, so no client can read or write the
//! server's file system or change what other clients see. URL tables (`SELECT * FROM
//! '/etc/passwd'`) are off in the session recipe, and no table function reads files.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{LogicalPlan, Statement};
use datafusion::prelude::SessionContext;
use lendfusion_core::diagnose::{may_be_file_error_text, name_bad_file};
use lendfusion_core::error_kind::{ErrorKind, classify, untag, without_debug_text};
use tonic::Status;

/// Plan `sql` into a logical plan; errors become statuses.
pub async fn plan_sql(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan, Status> {
    if sql.trim().is_empty() {
        return Err(Status::invalid_argument("empty SQL statement"));
    }
    ctx.state()
        .create_logical_plan(sql)
        .await
        .map_err(|e| status_of(&e))
}

/// `PERMISSION_DENIED` unless `plan` only reads.
pub fn ensure_read_only(plan: &LogicalPlan) -> Result<(), Status> {
    match refusal(plan) {
        Some(what) => Err(Status::permission_denied(format!(
            "{what} is not allowed: this server only runs queries that read \
             (the administrator can start it with --allow-writes)"
        ))),
        None => Ok(()),
    }
}

/// What in `plan` is not a read, if anything.
fn refusal(plan: &LogicalPlan) -> Option<String> {
    let mut found = None;
    let _ = plan.apply_with_subqueries(|node| {
        let what = match node {
            LogicalPlan::Ddl(ddl) => Some(format!("{} (DDL)", ddl.name())),
            LogicalPlan::Dml(dml) => Some(format!("{} (DML)", dml.op)),
            LogicalPlan::Copy(_) => Some("COPY ... TO".to_string()),
            LogicalPlan::Statement(statement) => Some(match statement {
                Statement::SetVariable(_) | Statement::ResetVariable(_) => {
                    "SET of a server setting".to_string()
                }
                other => format!("the {} statement", other.name()),
            }),
            _ => None,
        };
        match what {
            Some(what) => {
                found = Some(what);
                Ok(TreeNodeRecursion::Stop)
            }
            None => Ok(TreeNodeRecursion::Continue),
        }
    });
    found
}

/// The gRPC status for a query error: its kind's code and its plain message (the root of the
/// error chain, no Rust debug text).
pub fn status_of(error: &DataFusionError) -> Status {
    // An error that carries a job's failure text, with a worker's classified error in it.
    if let Some(classified) = untag(&error.to_string()) {
        return classified.status();
    }
    if let DataFusionError::Execution(text) = error.find_root()
        && text.starts_with("Job failed")
    {
        return status_of_message(text);
    }
    classify(error).status()
}

/// The status for a job that failed on the cluster, from the failure text the scheduler has.
/// A worker classified the error where it happened (`lendfusion_core::error_kind`); a bad
/// data file is then named by reading the footers of the tables' files.
pub async fn job_failure_status(ctx: &SessionContext, text: &str) -> Status {
    let classified = untag(text);
    let file_trouble = match &classified {
        Some(c) => c.kind == ErrorKind::BadFile || may_be_file_error_text(&c.message),
        None => may_be_file_error_text(text),
    };
    if file_trouble {
        let message = classified.as_ref().map_or(text, |c| c.message.as_str());
        if let Some(named) = name_bad_file(ctx, message).await {
            return status_of(&named);
        }
    }
    match classified {
        Some(c) => c.status(),
        None => status_of_message(text),
    }
}

/// The status for an error known only by its text (a failed job's reason from a peer that
/// did not classify it), without the Rust debug wrappers of that text.
pub fn status_of_message(message: &str) -> Status {
    let message = without_debug_text(message);
    let message = message.as_str();
    let lower = message.to_ascii_lowercase();
    if lower.contains("resources exhausted") || lower.contains("resourcesexhausted") {
        Status::resource_exhausted(message)
    } else if lower.contains("bad data file") {
        Status::failed_precondition(message)
    } else if lower.contains("storage error")
        || lower.contains("object store")
        || lower.contains("connection refused")
        || lower.contains("no executors")
        || lower.contains("no worker")
        || lower.contains("fetch partition")
    {
        Status::unavailable(message)
    } else if is_missing_table(message) {
        Status::not_found(message)
    } else {
        Status::internal(message)
    }
}

fn is_missing_table(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    (lower.contains("table '") || lower.contains("table \"")) && lower.contains("not found")
}
