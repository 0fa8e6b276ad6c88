//! lendfusion's own Flight commands and actions (messages in `proto/lendfusion.proto`).

use arrow_flight::sql::Any;
use datafusion::prelude::SessionContext;
use lendfusion_core::factors::{PanelFactor, PanelRequest, builtin_factors, panel_sql};
use lendfusion_proto as pb;
use prost::Message;
use tonic::Status;

use super::statements::status_of;

/// Action names, with what each returns.
pub const ACTIONS: [(&str, &str); 3] = [
    (
        "list-functions",
        "every lendfusion SQL function and built-in factor (lendfusion.v1.FunctionList)",
    ),
    (
        "list-tables",
        "the tables and views with their columns (lendfusion.v1.TableList)",
    ),
    (
        "health",
        "status, live workers and version (lendfusion.v1.Health)",
    ),
];

/// A command of ours, decoded from a Flight descriptor's `Any`.
#[derive(Debug)]
pub enum Command {
    /// A factor panel.
    FactorPanel(pb::FactorPanel),
    /// A factor report.
    FactorReport(pb::FactorReport),
}

impl Command {
    /// Decode `any` if it is one of our commands.
    pub fn decode(any: &Any) -> Result<Option<Self>, Status> {
        let bad = |e: prost::DecodeError| Status::invalid_argument(format!("bad command: {e}"));
        if any.type_url == pb::type_url("FactorPanel") {
            return Ok(Some(Self::FactorPanel(
                pb::FactorPanel::decode(any.value.as_ref()).map_err(bad)?,
            )));
        }
        if any.type_url == pb::type_url("FactorReport") {
            return Ok(Some(Self::FactorReport(
                pb::FactorReport::decode(any.value.as_ref()).map_err(bad)?,
            )));
        }
        Ok(None)
    }
}

/// The SQL a `FactorPanel` runs.
pub fn factor_panel_sql(panel: &pb::FactorPanel) -> Result<String, Status> {
    let request = PanelRequest {
        factors: panel
            .factors
            .iter()
            .map(|f| PanelFactor {
                expression: f.expression.clone(),
                name: f.name.clone(),
            })
            .collect(),
        universe: panel.universe.clone(),
        start_date: panel.start_date.clone(),
        end_date: panel.end_date.clone(),
        columns: panel.columns.clone(),
        lookback_days: panel.lookback_days,
    };
    panel_sql(&request).map_err(|e| status_of(&e.into()))
}

/// The report options of a `FactorReport` and the table it asks for.
pub fn report_options(
    report: &pb::FactorReport,
) -> Result<(lendfusion_report::ReportOptions, String), Status> {
    use lendfusion_report::{DEFAULT_HTB_BPS, Direction, Rebalance, ReportOptions};
    let bad = |m: String| Status::invalid_argument(m);
    let date = |what: &str, text: &str| {
        lendfusion_core::factors::parse_date(what, text).map_err(|e| status_of(&e.into()))
    };
    let options = ReportOptions {
        factor: report.factor.clone(),
        universe: Some(report.universe.trim().to_string()).filter(|u| !u.is_empty()),
        start: date("start_date", &report.start_date)?,
        end: date("end_date", &report.end_date)?,
        rebalance: Rebalance::parse(&report.rebalance).map_err(bad)?,
        horizon: if report.horizon == 0 {
            21
        } else {
            report.horizon
        },
        quantiles: if report.quantiles == 0 {
            10
        } else {
            report.quantiles
        },
        direction: Direction::parse(&report.direction).map_err(bad)?,
        htb_threshold_bps: report.exclude_htb_bps.unwrap_or(DEFAULT_HTB_BPS),
        neutralize: report.neutralize,
        by_regime: report.by_regime,
        by_size: report.by_size,
        zero_bucket: report.zero_bucket,
        squeeze_validation: report.squeeze_validation,
    };
    options.validate().map_err(bad)?;
    let table = match report.table.trim() {
        "" => "summary".to_string(),
        other => other.to_string(),
    };
    Ok((options, table))
}

/// One table of a computed report.
pub fn report_table(
    tables: lendfusion_report::ReportTables,
    name: &str,
) -> Result<Vec<arrow::record_batch::RecordBatch>, Status> {
    let missing = |what: &str| {
        Status::invalid_argument(format!(
            "the report has no {what} table: ask for by_regime / by_size"
        ))
    };
    Ok(match name {
        "summary" => tables.summary,
        "series" | "ic" | "long_short" => tables.series,
        "quantile_returns" => tables.quantile_returns,
        "quantile_means" => tables.quantile_means,
        "assignments" => tables.assignments,
        "regimes" => tables.regimes.ok_or_else(|| missing("regimes"))?,
        "sizes" => tables.sizes.ok_or_else(|| missing("sizes"))?,
        "squeeze_validation" => tables
            .squeeze_validation
            .ok_or_else(|| missing("squeeze_validation"))?,
        "squeeze_spread" => tables
            .squeeze_spread
            .ok_or_else(|| missing("squeeze_spread"))?,
        other => {
            return Err(Status::invalid_argument(format!(
                "unknown report table {other:?}: summary, series, quantile_returns,                  quantile_means, assignments, regimes, sizes"
            )));
        }
    })
}

/// `list-functions`: every SQL function and built-in factor.
pub fn list_functions() -> Vec<u8> {
    let mut functions: Vec<pb::FunctionInfo> = lendfusion_udfs::catalog::function_infos()
        .into_iter()
        .map(|f| pb::FunctionInfo {
            name: f.name,
            kind: f.kind.to_string(),
            description: format!("{} — {}", f.signature, f.description),
        })
        .collect();
    functions.extend(builtin_factors().into_iter().map(|f| pb::FunctionInfo {
        name: f.name.to_string(),
        kind: "factor".to_string(),
        description: format!("{} — {}", f.sql, f.description),
    }));
    pb::FunctionList { functions }.encode_to_vec()
}

/// `list-tables`: the default schema's tables and views with their columns.
pub async fn list_tables(ctx: &SessionContext) -> Result<Vec<u8>, Status> {
    let state = ctx.state();
    let options = state.config().options().catalog.clone();
    let schema = state
        .catalog_list()
        .catalog(&options.default_catalog)
        .and_then(|c| c.schema(&options.default_schema))
        .ok_or_else(|| Status::internal("the default schema is missing"))?;
    let mut names = schema.table_names();
    names.sort();
    let mut tables = vec![];
    for name in names {
        let Ok(Some(provider)) = schema.table(&name).await else {
            continue;
        };
        let kind = match provider.table_type() {
            datafusion::datasource::TableType::View => "VIEW",
            _ => "TABLE",
        };
        let columns = provider
            .schema()
            .fields()
            .iter()
            .map(|f| pb::ColumnInfo {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
                nullable: f.is_nullable(),
            })
            .collect();
        tables.push(pb::TableInfo {
            name,
            kind: kind.to_string(),
            columns,
        });
    }
    Ok(pb::TableList { tables }.encode_to_vec())
}

/// `health`.
pub fn health(workers: usize, ready: bool) -> Vec<u8> {
    pb::Health {
        status: if ready { "ok" } else { "degraded" }.to_string(),
        workers: u32::try_from(workers).unwrap_or(u32::MAX),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
    .encode_to_vec()
}
