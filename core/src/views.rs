//! Built-in views of the catalog, defined in SQL over the tables.
//!
//! `squeeze_inputs` (SPEC §3.5): one row per row of `lending JOIN market ON (date, security_id)`
//! with the inputs of `squeeze_score`. Its time series run over those joined rows per security in
//! date order.
//!
//! Every comparison here goes through `valid_value`: in Arrow's total order NaN is above every
//! number and +inf above every finite one, so a bare `total_return > 0` would call a NaN return
//! an up day. SPEC §1: invalid values (NULL, NaN, ±inf) never satisfy a condition, and the
//! average volume is the average of the valid volumes.

use datafusion::execution::context::SessionContext;

use crate::error::Result;

/// Weekday index of a date: Monday-to-Friday days since a Monday long ago; Saturday and Sunday
/// share the index of the following Monday. `{d}` is replaced by a Date32 expression.
const WEEKDAY_INDEX: &str =
    "(5 * ((CAST({d} AS BIGINT) + 700003) / 7) + least((CAST({d} AS BIGINT) + 700003) % 7, 5))";

fn weekday_index(expr: &str) -> String {
    WEEKDAY_INDEX.replace("{d}", expr)
}

/// The SQL of `squeeze_inputs`.
pub fn squeeze_inputs_sql() -> String {
    let event_day = weekday_index("e.date");
    let row_day = weekday_index("CAST(CAST(e.date AS INT) + o.offset AS DATE)");
    format!(
        "WITH j AS (
           SELECT l.date, l.security_id, l.on_loan_qty, m.close, m.volume, m.total_return
           FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id
         ),
         c AS (
           SELECT date, security_id, volume, total_return,
             short_cohort_otm(on_loan_qty, close) OVER (PARTITION BY security_id ORDER BY date) AS otm,
             short_cohort_near_breakeven(on_loan_qty, close, 0.05) OVER (PARTITION BY security_id ORDER BY date) AS near_breakeven,
             AVG(valid_value(volume)) OVER (PARTITION BY security_id ORDER BY date ROWS BETWEEN 20 PRECEDING AND 1 PRECEDING) AS avg_volume_20
           FROM j
         ),
         news AS (
           SELECT DISTINCT date, security_id FROM events
           WHERE event_type = 'news' AND valid_value(sentiment) > 0.5 AND valid_value(relevance) >= 90
         ),
         earnings AS (
           -- every weekday t with the announcement e in [t - 3 weekdays, t + 5 weekdays]
           SELECT DISTINCT CAST(CAST(e.date AS INT) + o.offset AS DATE) AS date, e.security_id
           FROM events e CROSS JOIN (SELECT unnest(generate_series(-9, 9)) AS offset) o
           WHERE e.event_type = 'earnings' AND e.category = 'scheduled'
             AND {row_day} - {event_day} BETWEEN -5 AND 3
         )
         SELECT c.date, c.security_id, c.otm,
           MAX(c.otm) OVER (PARTITION BY c.security_id ORDER BY c.date ROWS BETWEEN 19 PRECEDING AND CURRENT ROW) AS otm_max20,
           c.near_breakeven,
           n.security_id IS NOT NULL AS news,
           er.security_id IS NOT NULL AS earnings,
           COALESCE(valid_value(c.volume) > 2 * c.avg_volume_20 AND valid_value(c.total_return) > 0, false) AS abnormal_volume
         FROM c
         LEFT JOIN news n ON n.date = c.date AND n.security_id = c.security_id
         LEFT JOIN earnings er ON er.date = c.date AND er.security_id = c.security_id"
    )
}

/// Register the views whose tables are present.
pub async fn register_views(ctx: &SessionContext) -> Result<()> {
    let has = |t: &str| ctx.table_exist(t).unwrap_or(false);
    if has("lending") && has("market") && has("events") {
        let view = ctx.sql(&squeeze_inputs_sql()).await?.into_view();
        ctx.register_table("squeeze_inputs", view)?;
    }
    Ok(())
}
