//! Built-in factors by name, and the SQL of a factor panel (the Flight `FactorPanel` command;
//! the report builds on the same panel).
//!
//! A panel is `lending JOIN market` on `(date, security_id)` — plus the `squeeze_inputs` view
//! when a factor needs it — restricted to the universe's members on each date (point in
//! time), with one column per factor. Factors are evaluated from `lookback_days` before the
//! first date on, over every row of the securities that are members at some point of the
//! requested dates: time-series windows see each security's full history (a name that joins
//! the universe keeps its past), and every window that compares securities (`cs_rank(x) OVER
//! (PARTITION BY date)`, ...) sees only that date's members ([`crate::cross_sections`]). The
//! output is then cut to the members and the requested dates.

use chrono::NaiveDate;

use crate::cross_sections::within_sample;
use crate::error::{LendfusionError, Result};

/// The Boolean column of a panel's rows that says whether the row is in the sample (a
/// universe's member on its date): the cross-sectional windows are partitioned by it.
pub const SAMPLE_COLUMN: &str = "__lf_in_sample";

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

/// `value` as an SQL string literal.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The rows of `relation` (an SQL query with `date` and `security_id` columns, each pair once)
/// with a Boolean column `flag`, never NULL: whether the row's security is a member of
/// `universe` on the row's date. `since` bounds the dates looked up (the relation has none
/// earlier). A join with the members' keys of `lending`, since DataFusion cannot plan an
/// `EXISTS` subquery in a projection.
pub fn with_membership(
    relation: &str,
    universe: &str,
    flag: &str,
    since: Option<NaiveDate>,
) -> String {
    let since = since.map_or_else(String::new, |d| format!(" AND k.date >= DATE '{d}'"));
    format!(
        "SELECT x.*, k.security_id IS NOT NULL AS {flag} FROM ({relation}) x \
         LEFT JOIN (SELECT k.date, k.security_id FROM lending k WHERE EXISTS (SELECT 1 FROM universe u \
           WHERE u.universe = {} AND u.security_id = k.security_id AND u.start_date <= k.date \
           AND (u.end_date IS NULL OR k.date <= u.end_date)){since}) k \
         ON x.date = k.date AND x.security_id = k.security_id",
        quote_literal(universe)
    )
}

/// Whether the security of row `alias` is a member of `universe` at some point between `start`
/// and `end` (unbounded when `None`). Only those securities' rows can be in a sample; leaving
/// the others out changes no factor value of a member ([`crate::cross_sections`]: time series
/// are per security, cross-sections see the sample only).
pub fn ever_member_sql(
    universe: &str,
    alias: &str,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
) -> String {
    let mut conditions = vec![format!("v.universe = {}", quote_literal(universe))];
    if let Some(start) = start {
        conditions.push(format!(
            "(v.end_date IS NULL OR v.end_date >= DATE '{start}')"
        ));
    }
    if let Some(end) = end {
        conditions.push(format!("v.start_date <= DATE '{end}'"));
    }
    format!(
        "{alias}.security_id IN (SELECT v.security_id FROM universe v WHERE {})",
        conditions.join(" AND ")
    )
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
    let universe = request.universe.trim();
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
        // Cross-sections among the universe's members only.
        let sql = if universe.is_empty() {
            sql
        } else {
            within_sample(&sql, SAMPLE_COLUMN)?.sql
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
    let from = start.map(|start| {
        let lookback = if request.lookback_days == 0 {
            400
        } else {
            request.lookback_days
        };
        start - chrono::Duration::days(i64::from(lookback))
    });
    if let Some(from) = from {
        filters.push(format!("p.date >= DATE '{from}'"));
    }
    let mut outer = vec![];
    if let Some(start) = start {
        outer.push(format!("date >= DATE '{start}'"));
    }
    if let Some(end) = end {
        outer.push(format!("date <= DATE '{end}'"));
    }
    // With a universe: every row of the securities that are members at some point of the
    // dates, marked by whether it is a member on its date; the members are kept at the end.
    if !universe.is_empty() {
        filters.push(ever_member_sql(universe, "p", start, end));
        outer.push(SAMPLE_COLUMN.to_string());
    }
    let where_clause = if filters.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", filters.join(" AND "))
    };
    let rows = format!("SELECT p.* FROM ({base}) p{where_clause}");
    let (panel, carried, output) = if universe.is_empty() {
        (rows, String::new(), "*".to_string())
    } else {
        let output = names
            .iter()
            .map(|n| quote_identifier(n))
            .collect::<Result<Vec<_>>>()?;
        (
            with_membership(&rows, universe, SAMPLE_COLUMN, from),
            format!("{SAMPLE_COLUMN}, "),
            format!("date, security_id, {}", output.join(", ")),
        )
    };
    let outer = if outer.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", outer.join(" AND "))
    };
    Ok(format!(
        "WITH panel AS ({panel}), \
         factors AS (SELECT date, security_id, {carried}{} FROM panel) \
         SELECT {output} FROM factors{outer} ORDER BY date, security_id",
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
