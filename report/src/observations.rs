//! The engine's part of a report: one row per (rebalance date, universe member) with the
//! factor known on that date and the forward return that follows it.
//!
//! No look-ahead: the factor is computed from rows up to the rebalance date (the functions'
//! windows only look back, except `fwd_return`, which is computed separately on `market` and
//! only joined); rows are never dropped for a missing forward return before bucketing.
//!
//! Samples: the full side is the universe's members on each date, the ex-HTB side those of
//! them that are not hard to borrow that day. The factor is evaluated over every row, so its
//! time series see each security's full history, but its cross-sectional windows see only the
//! sample's rows ([`lendfusion_core::cross_sections`]) — once per side, so ex-HTB values are
//! ranked among the ex-HTB names (`factor_ex`) — and so does `--neutralize`.
//!
//! Invalid values (SPEC §1): the factor is `valid_value(...)` (a NaN or infinite factor is
//! NULL, left out of ranks, buckets and ICs), the market return averages the valid returns, and
//! a holding-period return needs every daily return valid and above -1.

use datafusion::error::{DataFusionError, Result};
use lendfusion_core::cross_sections::within_sample;
use lendfusion_core::factors::{builtin_factor, ever_member_sql, panel_base_sql, with_membership};

use crate::options::{Rebalance, ReportOptions};

/// Holding periods (rows) of the squeeze validation's excess returns.
pub const SQUEEZE_HOLDING_DAYS: [u32; 4] = [5, 10, 21, 63];

/// Calendar days of history before the first rebalance date that factor windows may use.
const LOOKBACK_DAYS: i64 = 400;

/// The factor's SQL: a built-in factor's expression, or the expression as given.
pub fn factor_sql(factor: &str) -> String {
    builtin_factor(factor).map_or_else(|| factor.to_string(), |b| b.sql.to_string())
}

/// Whether a row is in the full side's sample: a member of the universe on its date.
const MEMBER: &str = "__lf_member";
/// Whether a row is in the ex-HTB side's sample: a member that is not hard to borrow that day.
const EX_HTB: &str = "__lf_ex_htb";

/// The observations query. Columns: `date, security_id, factor` (the factor within the
/// universe's members), `factor_ex` (the factor within the members that are not hard to borrow;
/// meaningful on those rows), `fwd_ret` (the `horizon`-row forward return, for the IC and the
/// quantile returns), `hold_ret` (the return held from this rebalance date to the next one, for
/// the long/short portfolio; NULL on the last), `fee_bps, market_cap`, plus `regime` (with
/// `by_regime`). With `neutralize`, `factor` and `factor_ex` are already the cross-sectional
/// residuals, each within its sample.
pub fn observations_sql(options: &ReportOptions) -> Result<String> {
    let expression = factor_sql(&options.factor);
    // The full side: cross-sections among the members (all rows without a universe).
    let factor = match &options.universe {
        Some(_) => {
            within_sample(&expression, MEMBER)
                .map_err(DataFusionError::from)?
                .sql
        }
        None => expression.clone(),
    };
    // The ex-HTB side: cross-sections among the members that are not hard to borrow.
    let ex = within_sample(&expression, EX_HTB).map_err(DataFusionError::from)?;
    let factor_ex = if ex.cross_sectional {
        format!(", valid_value(CAST(({}) AS DOUBLE)) AS factor_ex", ex.sql)
    } else {
        String::new()
    };
    let factor_ex_col = if ex.cross_sectional {
        ", s.factor_ex"
    } else {
        ", s.factor AS factor_ex"
    };
    let needs_market = options.neutralize || options.by_regime;
    let mut base = panel_base_sql(&factor);
    if needs_market {
        base = format!("SELECT b.*, mk.mkt FROM ({base}) b JOIN market_ret mk ON b.date = mk.date");
    }
    let lower_bound = options
        .start
        .map(|s| s - chrono::Duration::days(LOOKBACK_DAYS));
    let mut base_filters = vec![];
    if let Some(from) = lower_bound {
        base_filters.push(format!("x.date >= DATE '{from}'"));
    }
    if let Some(universe) = &options.universe {
        base_filters.push(ever_member_sql(universe, "x", options.start, options.end));
    }
    let base_where = if base_filters.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", base_filters.join(" AND "))
    };
    let rows = format!("SELECT x.* FROM ({base}) x{base_where}");
    let members = match &options.universe {
        Some(universe) => with_membership(&rows, universe, MEMBER, lower_bound),
        None => format!("SELECT r.*, TRUE AS {MEMBER} FROM ({rows}) r"),
    };
    let thr = options.htb_threshold_bps;
    let flagged = format!(
        "SELECT y.*, y.{MEMBER} AND is_htb(y.fee_bps, {thr:?}) IS NOT TRUE AS {EX_HTB} FROM ({members}) y"
    );
    let neutral_inputs = if options.neutralize {
        ", ln(market_cap) AS ln_cap, book_to_market, \
         past_return(total_return, 252, 21) OVER (PARTITION BY security_id ORDER BY date) AS mom_12_1, \
         ts_beta(total_return, mkt, 252) OVER (PARTITION BY security_id ORDER BY date) AS beta_252"
    } else {
        ""
    };
    let rebalance_dates = match options.rebalance {
        Rebalance::Monthly => {
            "SELECT max(date) AS date FROM calendar GROUP BY date_trunc('month', date)"
        }
        Rebalance::Weekly => {
            "SELECT max(date) AS date FROM calendar GROUP BY date_trunc('week', date)"
        }
        Rebalance::Daily => "SELECT date FROM calendar",
    };
    let mut filters = vec![];
    if let Some(start) = options.start {
        filters.push(format!("s.date >= DATE '{start}'"));
    }
    if let Some(end) = options.end {
        filters.push(format!("s.date <= DATE '{end}'"));
    }
    if options.universe.is_some() {
        filters.push(format!("s.{MEMBER}"));
    }
    let where_clause = if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    };
    let regime_cte = if options.by_regime {
        ", regimes AS (SELECT date, market_regime(past_return(mkt, 63) OVER (ORDER BY date)) AS regime FROM market_ret)"
    } else {
        ""
    };
    let regime_join = if options.by_regime {
        " LEFT JOIN regimes g ON s.date = g.date"
    } else {
        ""
    };
    let regime_col = if options.by_regime { ", g.regime" } else { "" };
    let neutral_cols = if options.neutralize {
        ", s.ln_cap, s.book_to_market, s.mom_12_1, s.beta_252"
    } else {
        ""
    };
    let (squeeze_fwd, squeeze_cte, squeeze_cols, squeeze_join) = if options.squeeze_validation {
        let fwd: String = SQUEEZE_HOLDING_DAYS
            .iter()
            .map(|k| {
                format!(
                    ", fwd_return(total_return, {k}) OVER (PARTITION BY security_id ORDER BY date) AS fwd_{k}d"
                )
            })
            .collect();
        let cols: String = SQUEEZE_HOLDING_DAYS
            .iter()
            .map(|k| format!(", f.fwd_{k}d"))
            .collect();
        let cte = format!(
            ", events AS (SELECT l.date, l.security_id, \
               squeeze_event(m.total_return, l.on_loan_qty) OVER (PARTITION BY l.security_id ORDER BY l.date) AS ev \
               FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id), \
             later AS (SELECT date, security_id, \
               MAX(CASE WHEN ev THEN 1.0 WHEN ev IS NOT NULL THEN 0.0 END) OVER (PARTITION BY security_id ORDER BY date \
                 ROWS BETWEEN 1 FOLLOWING AND {h} FOLLOWING) AS squeeze_next FROM events)",
            h = options.horizon
        );
        (
            fwd,
            cte,
            format!("{cols}, q.squeeze_next"),
            " LEFT JOIN later q ON s.date = q.date AND s.security_id = q.security_id",
        )
    } else {
        (String::new(), String::new(), String::new(), "")
    };
    let ex_flag = if options.neutralize {
        format!(", s.{EX_HTB}")
    } else {
        String::new()
    };
    let sample = format!(
        "SELECT s.date, s.security_id, s.factor{factor_ex_col}, f.fwd_ret, h.hold_ret, s.fee_bps, s.market_cap\
         {neutral_cols}{regime_col}{squeeze_cols}{ex_flag} \
         FROM scored s JOIN rebalance r ON s.date = r.date \
         LEFT JOIN fwd f ON s.date = f.date AND s.security_id = f.security_id \
         LEFT JOIN held h ON s.date = h.date AND s.security_id = h.security_id{regime_join}{squeeze_join} {where_clause}"
    );
    let select = if options.neutralize {
        format!(
            "SELECT date, security_id, \
             fm_residual(factor, ln_cap, book_to_market, mom_12_1, beta_252) OVER (PARTITION BY date) AS factor, \
             fm_residual(factor_ex, ln_cap, book_to_market, mom_12_1, beta_252) OVER (PARTITION BY date, {EX_HTB}) \
               AS factor_ex, \
             fwd_ret, hold_ret, fee_bps, market_cap{regime}{squeeze} FROM sample",
            regime = if options.by_regime { ", regime" } else { "" },
            squeeze = if options.squeeze_validation {
                ", fwd_5d, fwd_10d, fwd_21d, fwd_63d, squeeze_next"
            } else {
                ""
            }
        )
    } else {
        "SELECT * FROM sample".to_string()
    };
    Ok(format!(
        "WITH market_ret AS (SELECT date, avg(valid_value(total_return)) AS mkt FROM market GROUP BY date), \
         calendar AS (SELECT DISTINCT date FROM market), \
         rebalance AS ({rebalance_dates}), \
         scored AS (SELECT date, security_id, valid_value(CAST(({factor}) AS DOUBLE)) AS factor{factor_ex}, {MEMBER}, {EX_HTB}, \
                    fee_bps, market_cap{neutral_inputs} FROM ({flagged}) p), \
         fwd AS (SELECT date, security_id, \
                 fwd_return(total_return, {horizon}) OVER (PARTITION BY security_id ORDER BY date) AS fwd_ret{squeeze_fwd} \
                 FROM market){squeeze_cte}, \
         period_of AS (SELECT c.date, max(r.date) AS start FROM calendar c JOIN rebalance r ON r.date < c.date \
                       WHERE c.date <= (SELECT max(date) FROM rebalance) GROUP BY c.date), \
         held AS (SELECT m.security_id, p.start AS date, \
                  CASE WHEN count(*) = count(CASE WHEN valid_value(m.total_return) > -1 THEN 1 END) \
                       THEN exp(sum(ln(1 + m.total_return))) - 1 END AS hold_ret \
                  FROM market m JOIN period_of p ON m.date = p.date GROUP BY m.security_id, p.start){regime_cte}, \
         sample AS ({sample}) \
         {select} ORDER BY date, security_id",
        horizon = options.horizon,
    ))
}
