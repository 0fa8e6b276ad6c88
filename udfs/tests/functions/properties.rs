//! Arbitrary input never makes a function fail, panic or return NaN or infinity.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;

use crate::{TestRng, new_ctx};

/// Values that break naive code: zeros of both signs, negatives, extremes, NaN, infinities.
fn nasty(rng: &mut TestRng) -> Option<f64> {
    match rng.below(16) {
        0 => None,
        1 => Some(f64::NAN),
        2 => Some(f64::INFINITY),
        3 => Some(f64::NEG_INFINITY),
        4 => Some(0.0),
        5 => Some(-0.0),
        6 => Some(f64::MAX),
        7 => Some(f64::MIN_POSITIVE),
        8 => Some(-1.0),
        9 => Some(-(rng.uniform() * 1e6)),
        10 => Some(1e300 * rng.uniform()),
        11 => Some(1.0),
        _ => Some(rng.uniform() * 200.0 - 50.0),
    }
}

fn table(seed: u64, rows: usize) -> RecordBatch {
    let mut rng = TestRng::new(seed);
    let schema = Arc::new(Schema::new(vec![
        Field::new("sid", DataType::Utf8, false),
        Field::new("d", DataType::Int64, false),
        Field::new("a", DataType::Float64, true),
        Field::new("b", DataType::Float64, true),
        Field::new("c", DataType::Float64, true),
    ]));
    let sid: StringArray = (0..rows).map(|i| Some(["x", "y", "z"][i % 3])).collect();
    let d: Int64Array = (0..rows as i64).collect::<Vec<_>>().into();
    let mut col =
        || -> ArrayRef { Arc::new((0..rows).map(|_| nasty(&mut rng)).collect::<Float64Array>()) };
    let (a, b, c) = (col(), col(), col());
    RecordBatch::try_new(schema, vec![Arc::new(sid), Arc::new(d), a, b, c]).expect("batch")
}

const SCALAR_CALLS: [&str; 16] = [
    "utilization(a, b)",
    "active_utilization(a, b)",
    "demand_supply_ratio(a, b)",
    "lending_supply(a, b)",
    "short_interest(a, b)",
    "short_interest_float(a, b)",
    "days_to_cover(a, b)",
    "on_loan_stability(a, b)",
    "lendable_stability(a, b)",
    "rerate_pct(a, b)",
    "rerate_direction(a, b)",
    "dcbs(a)",
    "is_htb(a, b)",
    "market_regime(a, b)",
    "utilization(a, 3)",
    "market_regime(a)",
];

const WINDOW_CALLS: [&str; 23] = [
    "fwd_return(a, 3)",
    "past_return(a, 5, 2)",
    "past_return(a, 1)",
    "ts_zscore(a, 4)",
    "si_surprise(a, 6)",
    "ts_beta(a, b, 5)",
    "short_cohort_otm(a, b)",
    "short_cohort_pnl(a, b)",
    "short_cohort_near_breakeven(a, b)",
    "short_cohort_near_breakeven(a, b, 0.5)",
    "squeeze_event(a, b)",
    "ts_zscore(c, 1)",
    "cs_rank(a)",
    "cs_zscore(a)",
    "cs_demean(a)",
    "cs_normal_rank(a)",
    "cs_bucket(a, 7)",
    "cs_winsorize(a, 0.1)",
    "fm_residual(a, b)",
    "fm_residual(a, b, c)",
    "squeeze_score(a, b, c, a > 0, b > 0, c IS NULL)",
    "crowded_score(a, b, c, a)",
    "squeeze_risk_score(a, b, c, a, b)",
];

const AGGREGATE_CALLS: [&str; 11] = [
    "spearman_ic(a, b)",
    "ann_return(a ORDER BY d)",
    "ann_return(a, 12)",
    "ann_vol(a)",
    "sharpe_ratio(a)",
    "information_ratio(a ORDER BY d)",
    "max_drawdown(a ORDER BY d)",
    "hit_rate(a)",
    "nw_tstat(a ORDER BY d)",
    "nw_tstat(a, 2 ORDER BY d)",
    "array_max(fm_coefficients(a, b, c))",
];

fn assert_finite(call: &str, seed: u64, column: &ArrayRef) {
    if column.data_type() == &DataType::Float64 {
        let values = column.as_primitive::<Float64Type>();
        for i in 0..values.len() {
            if values.is_valid(i) {
                assert!(
                    values.value(i).is_finite(),
                    "{call} returned {} (seed {seed}, row {i})",
                    values.value(i)
                );
            }
        }
    }
}

#[tokio::test]
async fn arbitrary_input_gives_null_or_finite_values() {
    for seed in 1..=12u64 {
        let ctx = new_ctx().expect("ctx");
        let batch = table(seed, 1 + (seed as usize * 37) % 300);
        let provider = MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("table");
        ctx.register_table("prop", Arc::new(provider))
            .expect("register");
        let calls = SCALAR_CALLS
            .iter()
            .map(|c| format!("{c} AS v FROM prop"))
            .chain(
                WINDOW_CALLS
                    .iter()
                    .map(|c| format!("{c} OVER (PARTITION BY sid ORDER BY d) AS v FROM prop")),
            )
            .chain(
                AGGREGATE_CALLS
                    .iter()
                    .map(|c| format!("{c} AS v FROM prop GROUP BY sid")),
            );
        for call in calls {
            let sql = format!("SELECT {call}");
            let batches = ctx
                .sql(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .collect()
                .await
                .unwrap_or_else(|e| panic!("{sql} (seed {seed}): {e}"));
            for batch in &batches {
                assert_finite(&call, seed, batch.column(0));
            }
        }
    }
}
