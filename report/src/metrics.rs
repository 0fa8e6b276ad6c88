//! The report's numbers, computed from the observations with lendfusion's own SQL functions
//! (`cs_bucket`, `spearman_ic`, `ann_return`, `sharpe_ratio`, `max_drawdown`, ...) in a local
//! session: the observations are small (rebalance dates × members).

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use lendfusion_core::LendfusionConfig;

use crate::options::{Direction, ReportOptions};

/// Every table of a report.
#[derive(Debug, Clone)]
pub struct ReportTables {
    /// Per sample (`full`, `ex_htb`): IC and long/short statistics over the period.
    pub summary: Vec<RecordBatch>,
    /// Per sample and rebalance date: `ic` (with the forward return), `long_short` (the
    /// legs' returns held to the next rebalance date), `turnover`, `names`.
    pub series: Vec<RecordBatch>,
    /// Per sample, rebalance date and bucket: mean forward return and names.
    pub quantile_returns: Vec<RecordBatch>,
    /// Per sample and bucket: the mean over dates of the bucket's mean forward return.
    pub quantile_means: Vec<RecordBatch>,
    /// Per sample and market regime (with `by_regime`).
    pub regimes: Option<Vec<RecordBatch>>,
    /// Per sample and market-cap quintile: mean IC (with `by_size`).
    pub sizes: Option<Vec<RecordBatch>>,
    /// Per sample, rebalance date and security: the factor, its bucket and the forward return.
    pub assignments: Vec<RecordBatch>,
    /// Per sample and bucket: squeeze frequency in the next `horizon` rows against the
    /// universe's, and excess returns by holding period (with `squeeze_validation`).
    pub squeeze_validation: Option<Vec<RecordBatch>>,
    /// Per sample and holding period: lowest bucket's excess return over the universe and the
    /// lowest-minus-highest spread (with `squeeze_validation`).
    pub squeeze_spread: Option<Vec<RecordBatch>>,
}

async fn register(ctx: &SessionContext, name: &str, batches: Vec<RecordBatch>) -> Result<()> {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| DataFusionError::Plan(format!("{name}: no data")))?;
    ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![batches])?))?;
    Ok(())
}

async fn collect(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    ctx.sql(sql).await?.collect().await
}

/// Compute every table from the observations (see [`crate::observations`]).
pub async fn compute(
    options: &ReportOptions,
    observations: Vec<RecordBatch>,
) -> Result<ReportTables> {
    let rows: usize = observations.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 {
        return Err(DataFusionError::Plan(
            "the report has no observations: check the date range, the universe and the factor"
                .into(),
        ));
    }
    let ctx = lendfusion_core::session_context(&LendfusionConfig::default())
        .await
        .map_err(DataFusionError::from)?;
    register(&ctx, "obs", observations).await?;

    let q = options.quantiles;
    let bucket = |partition: &str| {
        if options.zero_bucket {
            format!(
                "CASE WHEN factor = 0 THEN 0 ELSE cs_bucket(CASE WHEN factor > 0 THEN factor END, {q}) \
                 OVER (PARTITION BY {partition}) END"
            )
        } else {
            format!("cs_bucket(factor, {q}) OVER (PARTITION BY {partition})")
        }
    };
    let extra = [
        options.by_regime.then_some(", regime"),
        Some(", market_cap"),
        options
            .squeeze_validation
            .then_some(", fwd_5d, fwd_10d, fwd_21d, fwd_63d, squeeze_next"),
    ]
    .into_iter()
    .flatten()
    .collect::<String>();
    let thr = options.htb_threshold_bps;
    let bucketed = collect(
        &ctx,
        &format!(
            "SELECT 'full' AS sample, date, security_id, factor, fwd_ret, hold_ret, {full} AS bucket{extra} FROM obs \
             UNION ALL \
             SELECT 'ex_htb' AS sample, date, security_id, factor, fwd_ret, hold_ret, {full} AS bucket{extra} FROM \
             (SELECT date, security_id, factor_ex AS factor, fwd_ret, hold_ret{extra} FROM obs \
              WHERE is_htb(fee_bps, {thr:?}) IS NOT TRUE) e",
            full = bucket("date"),
        ),
    )
    .await?;
    register(&ctx, "bucketed", bucketed).await?;
    let assignments = collect(
        &ctx,
        "SELECT sample, date, security_id, factor, bucket, fwd_ret, hold_ret FROM bucketed \
         ORDER BY sample DESC, date, security_id",
    )
    .await?;

    // Long the lowest bucket and short the highest (bearish), or the reverse.
    let (low, high) = (if options.zero_bucket { 0 } else { 1 }, q);
    let (long, short) = match options.direction {
        Direction::Bearish => (low, high),
        Direction::Bullish => (high, low),
    };
    let quantile_returns = collect(
        &ctx,
        "SELECT sample, date, bucket, avg(fwd_ret) AS mean_return, count(fwd_ret) AS names \
         FROM bucketed WHERE bucket IS NOT NULL GROUP BY sample, date, bucket \
         ORDER BY sample DESC, date, bucket",
    )
    .await?;
    let series = collect(
        &ctx,
        &format!(
            "WITH legs AS ( \
               SELECT sample, date, security_id, CASE WHEN bucket = {long} THEN 'long' ELSE 'short' END AS leg \
               FROM bucketed WHERE bucket IN ({long}, {short})), \
             dates AS ( \
               SELECT sample, date, LAG(date) OVER (PARTITION BY sample ORDER BY date) AS prev \
               FROM (SELECT DISTINCT sample, date FROM bucketed) d), \
             kept AS ( \
               SELECT l.sample, l.date, l.leg, l.security_id, p.security_id AS was_there \
               FROM legs l JOIN dates d ON l.sample = d.sample AND l.date = d.date \
               LEFT JOIN legs p ON p.sample = l.sample AND p.date = d.prev AND p.leg = l.leg \
                 AND p.security_id = l.security_id \
               WHERE d.prev IS NOT NULL), \
             per_leg AS ( \
               SELECT sample, date, leg, 1.0 - CAST(count(was_there) AS DOUBLE) / count(*) AS turnover \
               FROM kept GROUP BY sample, date, leg), \
             turnover AS (SELECT sample, date, avg(turnover) AS turnover FROM per_leg GROUP BY sample, date), \
             per_date AS ( \
               SELECT sample, date, spearman_ic(factor, fwd_ret) AS ic, count(factor) AS names, \
                      avg(CASE WHEN bucket = {long} THEN hold_ret END) AS long_return, \
                      avg(CASE WHEN bucket = {short} THEN hold_ret END) AS short_return \
               FROM bucketed GROUP BY sample, date) \
             SELECT p.sample, p.date, p.ic, p.long_return - p.short_return AS long_short, \
                    p.long_return, p.short_return, t.turnover, p.names \
             FROM per_date p LEFT JOIN turnover t ON p.sample = t.sample AND p.date = t.date \
             ORDER BY p.sample DESC, p.date"
        ),
    )
    .await?;
    register(&ctx, "series", series.clone()).await?;
    register(&ctx, "quantile_returns", quantile_returns.clone()).await?;

    let periods = options.rebalance.periods_per_year();
    // `full` before `ex_htb` everywhere.
    let stats = |group: &str, order: &str, from: &str| {
        format!(
            "SELECT {group}, count(ic) AS ic_periods, avg(ic) AS ic_mean, stddev_samp(ic) AS ic_std, \
               avg(ic) / (stddev_samp(ic) / sqrt(CAST(count(ic) AS DOUBLE))) AS ic_t_stat, \
               avg(CASE WHEN ic > 0 THEN 1.0 WHEN ic IS NOT NULL THEN 0.0 END) AS ic_share_positive, \
               count(long_short) AS periods, \
               ann_return(long_short, {periods} ORDER BY date) AS ann_return, \
               ann_vol(long_short, {periods}) AS ann_vol, \
               sharpe_ratio(long_short, {periods}) AS sharpe, \
               information_ratio(long_short, {periods} ORDER BY date) AS information_ratio, \
               hit_rate(long_short) AS hit_rate, \
               avg(turnover) AS turnover, \
               max_drawdown(long_short ORDER BY date) AS max_drawdown \
             FROM {from} GROUP BY {group} ORDER BY {order}"
        )
    };
    let summary = collect(&ctx, &stats("sample", "sample DESC", "series")).await?;
    let quantile_means = collect(
        &ctx,
        "SELECT sample, bucket, avg(mean_return) AS mean_return, count(mean_return) AS periods \
         FROM quantile_returns GROUP BY sample, bucket ORDER BY sample DESC, bucket",
    )
    .await?;
    let regimes = if options.by_regime {
        let sql = stats(
            "sample, regime",
            "sample DESC, regime",
            "(SELECT s.*, r.regime FROM series s JOIN (SELECT DISTINCT date, regime FROM bucketed) r \
              ON s.date = r.date) x",
        );
        Some(collect(&ctx, &sql).await?)
    } else {
        None
    };
    let sizes = if options.by_size {
        Some(
            collect(
                &ctx,
                "WITH sized AS (SELECT sample, date, factor, fwd_ret, \
                   cs_bucket(market_cap, 5) OVER (PARTITION BY sample, date) AS size_quintile FROM bucketed), \
                 ics AS (SELECT sample, date, size_quintile, spearman_ic(factor, fwd_ret) AS ic \
                   FROM sized WHERE size_quintile IS NOT NULL GROUP BY sample, date, size_quintile) \
                 SELECT sample, size_quintile, avg(ic) AS ic_mean, count(ic) AS ic_periods, \
                   avg(ic) / (stddev_samp(ic) / sqrt(CAST(count(ic) AS DOUBLE))) AS ic_t_stat \
                 FROM ics GROUP BY sample, size_quintile ORDER BY sample DESC, size_quintile",
            )
            .await?,
        )
    } else {
        None
    };
    let (squeeze_validation, squeeze_spread) = if options.squeeze_validation {
        let (validation, spread) = squeeze_tables(&ctx, q).await?;
        (Some(validation), Some(spread))
    } else {
        (None, None)
    };
    Ok(ReportTables {
        summary,
        series,
        quantile_returns,
        quantile_means,
        regimes,
        sizes,
        assignments,
        squeeze_validation,
        squeeze_spread,
    })
}

/// Markit's Table 1 layout: per bucket, squeeze frequency and excess returns against the
/// universe (all bucketed names of the date); per holding period, the lowest bucket's excess
/// return and the lowest-minus-highest spread, averaged over rebalance dates. The universe's
/// squeeze share is one mean per sample, joined to every bucket, so all buckets show the same
/// value bit for bit (a mean per bucket group would sum the same dates in a different order).
async fn squeeze_tables(
    ctx: &SessionContext,
    quantiles: u32,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>)> {
    let holdings = crate::observations::SQUEEZE_HOLDING_DAYS;
    let means: String = holdings
        .iter()
        .map(|k| format!(", avg(fwd_{k}d) AS f{k}"))
        .collect();
    let excess: String = holdings
        .iter()
        .map(|k| format!(", avg(p.f{k} - u.f{k}) AS excess_{k}d"))
        .collect();
    let validation = collect(
        ctx,
        &format!(
            "WITH per_date AS (SELECT sample, date, bucket, count(*) AS names, avg(squeeze_next) AS sq{means} \
               FROM bucketed WHERE bucket IS NOT NULL GROUP BY sample, date, bucket), \
             universe AS (SELECT sample, date, avg(squeeze_next) AS sq{means} \
               FROM bucketed WHERE bucket IS NOT NULL GROUP BY sample, date), \
             universe_share AS (SELECT sample, avg(sq) AS share FROM universe GROUP BY sample) \
             SELECT p.sample, p.bucket, sum(p.names) AS names, avg(p.sq) AS squeeze_share, \
               max(s.share) AS universe_squeeze_share{excess} \
             FROM per_date p JOIN universe u ON p.sample = u.sample AND p.date = u.date \
               JOIN universe_share s ON p.sample = s.sample \
             GROUP BY p.sample, p.bucket ORDER BY p.sample DESC, p.bucket"
        ),
    )
    .await?;
    let spread = holdings
        .iter()
        .map(|k| {
            format!(
                "SELECT sample, {k} AS holding_days, avg(low - universe) AS lowest_bucket_excess, \
                   avg(low - high) AS lowest_minus_highest FROM ( \
                   SELECT sample, date, \
                     avg(CASE WHEN bucket = 1 THEN fwd_{k}d END) AS low, \
                     avg(CASE WHEN bucket = {quantiles} THEN fwd_{k}d END) AS high, \
                     avg(CASE WHEN bucket IS NOT NULL THEN fwd_{k}d END) AS universe \
                   FROM bucketed GROUP BY sample, date) d GROUP BY sample"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let spread = collect(
        ctx,
        &format!("SELECT * FROM ({spread}) s ORDER BY sample DESC, holding_days"),
    )
    .await?;
    Ok((validation, spread))
}
