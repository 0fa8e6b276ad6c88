//! Plan rewrites change speed, never results: a trailing `AVG` next to a lendfusion window
//! function (rewritten to one pass) equals the same `AVG` alone (DataFusion's own), to the bit.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::{TestRng, new_ctx};

/// Partitions of 0..120 rows; values with NULLs, NaN, infinities, signed zeros, huge and tiny
/// magnitudes (where summation order shows in the last bits).
fn table(rng: &mut TestRng) -> RecordBatch {
    let (mut g, mut t, mut x, mut i) = (vec![], vec![], vec![], vec![]);
    for group in 0..40i64 {
        let rows = rng.below(120) as i64;
        for row in 0..rows {
            g.push(group);
            t.push(row);
            x.push(match rng.below(40) {
                0 => None,
                1 => Some(f64::NAN),
                2 => Some(f64::INFINITY),
                3 => Some(f64::NEG_INFINITY),
                4 => Some(-0.0),
                5 => Some(1e300 * (rng.uniform() - 0.5)),
                6..=12 => Some(1e-3 * rng.uniform()),
                _ => Some(1e6 * (rng.uniform() - 0.3)),
            });
            i.push((rng.below(10) != 0).then(|| rng.below(1_000_000) as i64 - 1000));
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
        Field::new("x", DataType::Float64, true),
        Field::new("i", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(g)),
            Arc::new(Int64Array::from(t)),
            Arc::new(Float64Array::from(x)),
            Arc::new(Int64Array::from(i)),
        ],
    )
    .expect("batch")
}

async fn column(ctx: &SessionContext, sql: &str) -> (Vec<Option<u64>>, String) {
    let batches = ctx
        .sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let values = batches
        .iter()
        .flat_map(|b| {
            let a = b.column(0).as_primitive::<Float64Type>();
            (0..a.len())
                .map(|r| a.is_valid(r).then(|| a.value(r).to_bits()))
                .collect::<Vec<_>>()
        })
        .collect();
    let explain = ctx
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .expect("explain")
        .collect()
        .await
        .expect("explain");
    let plan = arrow::util::pretty::pretty_format_batches(&explain)
        .expect("format")
        .to_string();
    (values, plan)
}

#[tokio::test]
async fn trailing_avg_next_to_our_functions_equals_datafusions_to_the_bit() {
    let ctx = new_ctx().expect("session");
    let mut rng = TestRng::new(7);
    let batch = table(&mut rng);
    let mem = MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("table");
    ctx.register_table("v", Arc::new(mem)).expect("register");

    for n in [0, 1, 5, 29, 200] {
        for arg in ["x", "i"] {
            let over = format!(
                "OVER (PARTITION BY g ORDER BY t ROWS BETWEEN {n} PRECEDING AND CURRENT ROW)"
            );
            let alone = format!("SELECT AVG({arg}) {over} AS a, g, t FROM v ORDER BY g, t");
            let with_ours = format!(
                "SELECT AVG({arg}) {over} AS a, fwd_return(x, 1) OVER (PARTITION BY g ORDER BY t) \
                 AS f, g, t FROM v ORDER BY g, t"
            );
            let (expected, plain_plan) = column(&ctx, &alone).await;
            let (actual, rewritten_plan) = column(&ctx, &with_ours).await;
            assert!(
                !plain_plan.contains("lendfusion_rolling_avg"),
                "{plain_plan}"
            );
            assert!(
                rewritten_plan.contains("lendfusion_rolling_avg"),
                "not rewritten:\n{rewritten_plan}"
            );
            assert_eq!(expected.len(), actual.len());
            for (row, (e, a)) in expected.iter().zip(&actual).enumerate() {
                assert_eq!(e, a, "AVG({arg}), {n} preceding, row {row}");
            }
        }
    }

    // Not rewritten: other frames, FILTER, DISTINCT (DataFusion computes those).
    for call in [
        "AVG(x) OVER (PARTITION BY g ORDER BY t ROWS BETWEEN 3 PRECEDING AND 1 FOLLOWING)",
        "AVG(x) OVER (PARTITION BY g ORDER BY t RANGE BETWEEN 3 PRECEDING AND CURRENT ROW)",
        "AVG(x) FILTER (WHERE x > 0) OVER (PARTITION BY g ORDER BY t ROWS BETWEEN 3 PRECEDING AND CURRENT ROW)",
        "SUM(x) OVER (PARTITION BY g ORDER BY t ROWS BETWEEN 3 PRECEDING AND CURRENT ROW)",
    ] {
        let sql = format!(
            "SELECT {call} AS a, fwd_return(x, 1) OVER (PARTITION BY g ORDER BY t) AS f FROM v"
        );
        let (_, plan) = column(&ctx, &sql).await;
        assert!(!plan.contains("lendfusion_rolling_avg"), "{call}:\n{plan}");
    }
}
