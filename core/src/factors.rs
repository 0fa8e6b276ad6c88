//! Built-in factors by name, and the SQL of a factor panel (the Flight `FactorPanel` command;
//! the report builds on the same panel).
//!
//! A panel is `lending JOIN market` on `(date, security_id)` — plus the `squeeze_inputs` view
//! when a factor needs it — restricted to the universe's members on each date (point in
//! time), with one column per factor. Factors are evaluated on the member rows from
//! `lookback_days` before the first date on, so time-series windows see history; the output
//! is then cut to the requested dates.

use chrono::NaiveDate;

use crate::error::{LendfusionError, Result};

/// A built-in factor: its name and SQL over the panel's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinFactor {
    /// Name used in commands and reports.
    pub name: &'static str,
    /// SQL expression over the panel columns.
    pub sql: &'static str,
    /// What it measures.
    pub description: &'static str,
}

/// Every built-in factor.
pub fn builtin_factors() -> Vec<BuiltinFactor> {
    let f = |name, sql, description| BuiltinFactor {
        name,
        sql,
        description,
    };
    vec![
        f(
            "utilization",
            "utilization(on_loan_qty, lendable_qty)",
            "share of lendable inventory on loan",
        ),
        f(
            "active_utilization",
            "active_utilization(on_loan_value, active_lendable_value)",
            "on-loan value over active lendable value",
        ),
        f(
            "demand_supply_ratio",
            "demand_supply_ratio(borrowed_qty, lendable_qty)",
            "borrowed quantity over lendable quantity",
        ),
        f(
            "lending_supply",
            "lending_supply(lendable_qty, shares_outstanding)",
            "lendable share of shares outstanding",
        ),
        f(
            "short_interest",
            "short_interest(on_loan_qty, shares_outstanding)",
            "on-loan share of shares outstanding",
        ),
        f(
            "short_interest_float",
            "short_interest_float(on_loan_qty, float_shares)",
            "on-loan share of the float",
        ),
        f(
            "days_to_cover",
            "days_to_cover(on_loan_qty, AVG(valid_value(volume)) OVER (PARTITION BY security_id \
             ORDER BY date ROWS BETWEEN 29 PRECEDING AND CURRENT ROW))",
            "on-loan quantity over the 30-day average of the valid volumes",
        ),
        f(
            "fee_bps",
            "valid_value(fee_bps)",
            "indicative borrow fee, bps (NULL where NaN or infinite)",
        ),
        f(
            "on_loan_stability",
            "on_loan_stability(stable_on_loan_qty, on_loan_qty)",
            "share of the on-loan quantity lent by stable funds",
        ),
        f(
            "rerate_pct",
            "rerate_pct(rerated_value, on_loan_value)",
            "share of on-loan value repriced since the previous day",
        ),
        f(
            "si_surprise",
            "si_surprise(short_interest(on_loan_qty, shares_outstanding)) OVER (PARTITION BY security_id ORDER BY date)",
            "short interest z-score against its previous 252 rows",
        ),
        f(
            "momentum_12_1",
            "past_return(total_return, 252, 21) OVER (PARTITION BY security_id ORDER BY date)",
            "12-1 momentum: return over 252 rows skipping the last 21",
        ),
        f(
            "squeeze_score",
            "squeeze_score(otm, otm_max20, near_breakeven, news, earnings, abnormal_volume) \
             OVER (PARTITION BY date)",
            "Markit short-squeeze score, 1 = most likely to squeeze",
        ),
    ]
}

/// The built-in factor called `name`.
pub fn builtin_factor(name: &str) -> Option<BuiltinFactor> {
    builtin_factors()
        .into_iter()
        .find(|f| f.name.eq_ignore_ascii_case(name.trim()))
}

/// Columns of one table other than the keys `date` and `security_id`.
fn value_columns(schema: &arrow::datatypes::Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != "date" && n != "security_id")
        .collect()
}

/// Columns of a panel row that factors and extra columns may use: `lending`'s, then `market`'s.
pub fn panel_columns() -> Vec<String> {
    let mut columns = value_columns(&crate::schema::lending_schema());
    columns.extend(value_columns(&crate::schema::market_schema()));
    columns
}

/// Columns the `squeeze_inputs` view adds.
pub const SQUEEZE_COLUMNS: &[&str] = &[
    "otm",
    "otm_max20",
    "near_breakeven",
    "news",
    "earnings",
    "abnormal_volume",
];

/// A factor of a panel request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelFactor {
    /// Built-in name or SQL expression.
    pub expression: String,
    /// Output name (empty: derived).
    pub name: String,
}

/// What a panel request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PanelRequest {
    /// Factors in output order.
    pub factors: Vec<PanelFactor>,
    /// Universe name; empty = every security.
    pub universe: String,
    /// First date (YYYY-MM-DD), empty = unbounded.
    pub start_date: String,
    /// Last date (YYYY-MM-DD), empty = unbounded.
    pub end_date: String,
    /// Extra panel columns.
    pub columns: Vec<String>,
    /// History days before `start_date` (0 = 400).
    pub lookback_days: u32,
}

fn invalid(message: String) -> LendfusionError {
    LendfusionError::DataFusion(datafusion::error::DataFusionError::Plan(message))
}

/// An optional `YYYY-MM-DD` date (empty = none), or a planning error naming `what`.
pub fn parse_date(what: &str, value: &str) -> Result<Option<NaiveDate>> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| invalid(format!("{what} {value:?} is not a date (YYYY-MM-DD)")))
}

fn quote_identifier(name: &str) -> Result<String> {
    if name.is_empty() || name.contains('"') || name.chars().any(char::is_control) {
        return Err(invalid(format!("invalid column name {name:?}")));
    }
    Ok(format!("\"{name}\""))
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The SQL of a panel: `date, security_id, <factors>, <columns>` ordered by date and security.
pub fn panel_sql(request: &PanelRequest) -> Result<String> {
    if request.factors.is_empty() {
        return Err(invalid("a factor panel needs at least one factor".into()));
    }
    let start = parse_date("start_date", &request.start_date)?;
    let end = parse_date("end_date", &request.end_date)?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(invalid(format!("start_date {s} is after end_date {e}")));
    }
    let mut selected = vec![];
    let mut names = vec![];
    for (i, factor) in request.factors.iter().enumerate() {
        let builtin = builtin_factor(&factor.expression);
        let sql = match builtin {
            Some(b) => b.sql.to_string(),
            None if factor.expression.trim().is_empty() => {
                return Err(invalid(format!("factor {} has no expression", i + 1)));
            }
            None => factor.expression.clone(),
        };
        let name = match (factor.name.trim(), builtin) {
            ("", Some(b)) => b.name.to_string(),
            ("", None) => format!("factor_{}", i + 1),
            (name, _) => name.to_string(),
        };
        if names.contains(&name) || name == "date" || name == "security_id" {
            return Err(invalid(format!("duplicate output column {name:?}")));
        }
        selected.push(format!("({sql}) AS {}", quote_identifier(&name)?));
        names.push(name);
    }
    for column in &request.columns {
        let column = column.trim();
        let known = panel_columns();
        if !known.iter().any(|c| c == column) && !SQUEEZE_COLUMNS.contains(&column) {
            return Err(invalid(format!(
                "unknown panel column {column:?}; choose from {}",
                known.join(", ")
            )));
        }
        if names.iter().any(|n| n == column) {
            return Err(invalid(format!("duplicate output column {column:?}")));
        }
        selected.push(quote_identifier(column)?);
        names.push(column.to_string());
    }
    let base = panel_base_sql(&selected.join(" "));
    let mut filters = vec![];
    if let Some(start) = start {
        let lookback = if request.lookback_days == 0 {
            400
        } else {
            request.lookback_days
        };
        let from = start - chrono::Duration::days(i64::from(lookback));
        filters.push(format!("p.date >= DATE '{from}'"));
    }
    let universe = request.universe.trim();
    if !universe.is_empty() {
        filters.push(format!(
            "EXISTS (SELECT 1 FROM universe u WHERE u.universe = {} AND u.security_id = p.security_id \
             AND u.start_date <= p.date AND (u.end_date IS NULL OR p.date <= u.end_date))",
            quote_literal(universe)
        ));
    }
    let where_clause = if filters.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", filters.join(" AND "))
    };
    let mut outer = vec![];
    if let Some(start) = start {
        outer.push(format!("date >= DATE '{start}'"));
    }
    if let Some(end) = end {
        outer.push(format!("date <= DATE '{end}'"));
    }
    let outer = if outer.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", outer.join(" AND "))
    };
    Ok(format!(
        "WITH panel AS (SELECT p.* FROM ({base}) p{where_clause}), \
         factors AS (SELECT date, security_id, {} FROM panel) \
         SELECT * FROM factors{outer} ORDER BY date, security_id",
        selected.join(", ")
    ))
}

/// The panel's rows: `lending JOIN market` on `(date, security_id)` with every market column,
/// plus the `squeeze_inputs` columns when `expressions` mention one of them.
pub fn panel_base_sql(expressions: &str) -> String {
    let text = expressions.to_ascii_lowercase();
    let market: Vec<String> = value_columns(&crate::schema::market_schema())
        .iter()
        .map(|c| format!("m.{c}"))
        .collect();
    let base = format!(
        "SELECT l.*, {} FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id",
        market.join(", ")
    );
    if !SQUEEZE_COLUMNS.iter().any(|c| mentions(&text, c)) {
        return base;
    }
    format!(
        "SELECT b.*, {} FROM ({base}) b JOIN squeeze_inputs s ON b.date = s.date AND b.security_id = s.security_id",
        SQUEEZE_COLUMNS
            .iter()
            .map(|c| format!("s.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Whether `text` uses `word` as an identifier.
fn mentions(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}
