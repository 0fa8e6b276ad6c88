//! Plan rewrites change speed, never results: a trailing `AVG` next to a lendfusion window
//! function (rewritten to one pass) equals the same `AVG` alone (DataFusion's own), to the bit.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::{TestRng, ctx_with, new_ctx};

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
            // Every NaN as one: Rust leaves the sign and payload of a NaN that arithmetic
            // produces unspecified (an optimised build and a debug build of the same sum can
            // differ in the sign bit), so only "is NaN" is part of the result.
            (0..a.len())
                .map(|r| {
                    a.is_valid(r).then(|| match a.value(r) {
                        v if v.is_nan() => f64::NAN.to_bits(),
                        v => v.to_bits(),
                    })
                })
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

/// Window functions over whole partitions give the same rows, to the bit, whether the
/// partitions are evaluated all at once (DataFusion's `WindowAggExec`) or a run at a time as
/// input batches arrive (`ChunkedWindowExec`): batches smaller than a partition, partitions
/// spanning many batches, NULL and string keys, keys of two columns.
#[tokio::test]
async fn chunked_windows_equal_whole_partition_windows() {
    let mut rng = TestRng::new(11);
    let batch = table(&mut rng);
    let rows = batch.num_rows();
    // Every fifth group gets a NULL key (`o` keeps the original group); the string key `s`
    // merges groups into partitions that span many batches.
    let o = batch.column(0).clone();
    let g = o.as_primitive::<arrow::datatypes::Int64Type>();
    let nullable_g: Int64Array = (0..rows)
        .map(|r| (g.value(r) % 5 != 4).then_some(g.value(r)))
        .collect();
    let s: arrow::array::StringArray = (0..rows)
        .map(|r| Some(format!("s{}", g.value(r) % 7)))
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int64, true),
        Field::new("t", DataType::Int64, false),
        Field::new("x", DataType::Float64, true),
        Field::new("s", DataType::Utf8, false),
        Field::new("o", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(nullable_g),
            batch.column(1).clone(),
            batch.column(2).clone(),
            Arc::new(s),
            o,
        ],
    )
    .expect("batch");
    // Input in uneven batches, as files and shuffles deliver it.
    let mut pieces = vec![];
    let mut start = 0;
    while start < rows {
        let len = (1 + rng.below(97) as usize).min(rows - start);
        pieces.push(batch.slice(start, len));
        start += len;
    }

    let reference = {
        let ctx = ctx_with(SessionConfig::new().with_target_partitions(4), false).expect("session");
        let mem = MemTable::try_new(schema.clone(), vec![pieces.clone()]).expect("table");
        ctx.register_table("w", Arc::new(mem)).expect("register");
        ctx
    };
    let queries = [
        "fwd_return(x, 3) OVER (PARTITION BY g ORDER BY t, o)",
        "ts_zscore(x, 5) OVER (PARTITION BY g ORDER BY t, o)",
        "si_surprise(x, 4) OVER (PARTITION BY s ORDER BY t, o)",
        "cs_rank(x) OVER (PARTITION BY g)",
        "cs_normal_rank(x) OVER (PARTITION BY s, g)",
        // Least squares sums in row order: the order is fixed so that the bits compare.
        "fm_residual(x, CAST(t AS DOUBLE)) OVER (PARTITION BY s, g ORDER BY t, o)",
    ];
    for batch_size in [1, 7, 64, 8192] {
        let config = SessionConfig::new()
            .with_target_partitions(4)
            .with_batch_size(batch_size);
        let ctx = ctx_with(config, true).expect("session");
        let mem = MemTable::try_new(schema.clone(), vec![pieces.clone()]).expect("table");
        ctx.register_table("w", Arc::new(mem)).expect("register");
        for call in queries {
            let sql = format!("SELECT {call} AS a FROM w ORDER BY o, t");
            let (expected, plain_plan) = column(&reference, &sql).await;
            let (actual, chunked_plan) = column(&ctx, &sql).await;
            assert!(!plain_plan.contains("ChunkedWindowExec"), "{plain_plan}");
            assert!(
                chunked_plan.contains("ChunkedWindowExec"),
                "{call}:\n{chunked_plan}"
            );
            assert_eq!(expected.len(), rows);
            let first_difference = expected.iter().zip(&actual).position(|(e, a)| e != a);
            assert_eq!(first_difference, None, "{call}, batch size {batch_size}");
        }
    }
}
