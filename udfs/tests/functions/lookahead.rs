//! No function but `fwd_return` looks ahead: changing rows after t changes no output at t.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;

use crate::{TestRng, new_ctx};

/// Calls of every time-series function that must not see the future. `squeeze_event` needs
/// the next 5 rows by definition, so its output at t may depend on rows up to t+5 only.
const CALLS: [(&str, usize); 10] = [
    ("past_return(r, 5)", 0),
    ("past_return(r, 8, 3)", 0),
    ("ts_zscore(r, 6)", 0),
    ("si_surprise(q)", 0),
    ("ts_beta(r, m, 10)", 0),
    ("short_cohort_otm(q, p)", 0),
    ("short_cohort_pnl(q, p)", 0),
    ("short_cohort_near_breakeven(q, p)", 0),
    ("short_cohort_near_breakeven(q, p, 0.2)", 0),
    ("squeeze_event(r, q)", 5),
];

fn series(rng: &mut TestRng, rows: usize) -> Vec<[Option<f64>; 4]> {
    let mut q = 1000.0;
    let mut p = 20.0;
    (0..rows)
        .map(|_| {
            q = (q * (0.9 + 0.2 * rng.uniform())).round();
            p = (p * (0.95 + 0.1 * rng.uniform()) * 100.0).round() / 100.0;
            let r = 0.04 * (rng.uniform() - 0.5);
            let m = 0.02 * (rng.uniform() - 0.5);
            let hole = |rng: &mut TestRng, v: f64| (rng.below(25) != 0).then_some(v);
            [hole(rng, r), hole(rng, m), hole(rng, q), hole(rng, p)]
        })
        .collect()
}

fn batch(rows: &[[Option<f64>; 4]]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("d", DataType::Int64, false),
        Field::new("r", DataType::Float64, true),
        Field::new("m", DataType::Float64, true),
        Field::new("q", DataType::Float64, true),
        Field::new("p", DataType::Float64, true),
    ]));
    let mut columns: Vec<ArrayRef> = vec![Arc::new(
        (0..rows.len() as i64)
            .collect::<Vec<_>>()
            .into_iter()
            .collect::<Int64Array>(),
    )];
    for c in 0..4 {
        columns.push(Arc::new(
            rows.iter().map(|r| r[c]).collect::<Float64Array>(),
        ));
    }
    RecordBatch::try_new(schema, columns).expect("batch")
}

async fn outputs(rows: &[[Option<f64>; 4]], call: &str) -> Vec<String> {
    let ctx = new_ctx().expect("ctx");
    let b = batch(rows);
    ctx.register_table(
        "s",
        Arc::new(MemTable::try_new(b.schema(), vec![vec![b]]).expect("mem")),
    )
    .expect("register");
    let sql = format!("SELECT {call} OVER (ORDER BY d) FROM s ORDER BY d");
    let batches = ctx
        .sql(&sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let options = FormatOptions::default().with_null("NULL");
    let mut out = vec![];
    for batch in batches {
        let column = batch.column(0);
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options).expect("formatter");
        out.extend((0..column.len()).map(|i| formatter.value(i).to_string()));
    }
    out
}

#[tokio::test]
async fn changing_the_future_changes_nothing_before() {
    let mut rng = TestRng::new(99);
    let rows = 400;
    let base = series(&mut rng, rows);
    for (call, allowed_lead) in CALLS {
        let before = outputs(&base, call).await;
        for cut in [70usize, 180, 333] {
            let mut changed = base.clone();
            let replacement = series(&mut rng, rows);
            changed[cut + 1..].copy_from_slice(&replacement[cut + 1..]);
            let after = outputs(&changed, call).await;
            let last_safe = cut.saturating_sub(allowed_lead);
            assert_eq!(
                before[..=last_safe],
                after[..=last_safe],
                "{call}: rows up to {last_safe} changed when rows after {cut} did"
            );
        }
    }
    // fwd_return is the one function that must see the future.
    let before = outputs(&base, "fwd_return(r, 3)").await;
    let mut changed = base.clone();
    for row in changed.iter_mut().skip(200) {
        row[0] = Some(0.5);
    }
    let after = outputs(&changed, "fwd_return(r, 3)").await;
    assert_ne!(before[197..200], after[197..200]);
}
