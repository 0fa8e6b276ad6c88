//! Sorts by packed integer keys (`KeySortExec`, embedded sessions) order rows exactly as
//! DataFusion's `SortExec` does, over every type with a code, NULLs first and last, both
//! directions, ties, NaN and signed zeros, full 64-bit ranges, and keys too wide to pack.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, StringViewArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::{TestRng, ctx_with, ctx_with_runtime};

pub(crate) fn table(rng: &mut TestRng, rows: usize) -> RecordBatch {
    let pick = |rng: &mut TestRng, n: u64| rng.below(n);
    let mut ids: Vec<i64> = (0..rows as i64).collect();
    for k in (1..rows).rev() {
        ids.swap(k, pick(rng, k as u64 + 1) as usize);
    }
    let i: Int32Array = (0..rows)
        .map(|_| match pick(rng, 30) {
            0 => None,
            1 => Some(i32::MIN),
            2 => Some(i32::MAX),
            _ => Some(pick(rng, 20) as i32 - 10),
        })
        .collect();
    let f: Float64Array = (0..rows)
        .map(|_| match pick(rng, 20) {
            0 => None,
            1 => Some(f64::NAN),
            2 => Some(-f64::NAN),
            3 => Some(-0.0),
            4 => Some(0.0),
            5 => Some(f64::INFINITY),
            6 => Some(f64::NEG_INFINITY),
            7 => Some(f64::MIN_POSITIVE),
            _ => Some((pick(rng, 9) as f64 - 4.0) * 0.5),
        })
        .collect();
    let words = [
        "",
        "a",
        "A",
        "ab",
        "b",
        "zz",
        "é",
        "security-000123",
        "security-0001234",
    ];
    let s: StringArray = (0..rows)
        .map(|_| match pick(rng, 12) {
            0 => None,
            _ => Some(words[pick(rng, words.len() as u64) as usize]),
        })
        .collect();
    let v: StringViewArray = (0..rows)
        .map(|_| Some(format!("S{:05}", pick(rng, 300))))
        .collect();
    let d: Date32Array = (0..rows)
        .map(|_| (pick(rng, 15) != 0).then(|| 17_000 + pick(rng, 40) as i32))
        .collect();
    let b: BooleanArray = (0..rows)
        .map(|_| (pick(rng, 5) != 0).then(|| pick(rng, 2) == 1))
        .collect();
    let u: UInt64Array = (0..rows)
        .map(|_| match pick(rng, 10) {
            0 => u64::MAX,
            1 => 0,
            _ => pick(rng, 1000),
        })
        .map(Some)
        .collect();
    let un: UInt64Array = (0..rows)
        .map(|_| match pick(rng, 10) {
            0 => None,
            1 => Some(u64::MAX),
            2 => Some(0),
            _ => Some(pick(rng, 1000)),
        })
        .collect();
    let big: Int64Array = (0..rows)
        .map(|_| match pick(rng, 8) {
            0 => i64::MIN,
            1 => i64::MAX,
            _ => pick(rng, 50) as i64 - 25,
        })
        .map(Some)
        .collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(ids))),
        ("i", Arc::new(i)),
        ("f", Arc::new(f)),
        ("s", Arc::new(s)),
        ("v", Arc::new(v)),
        ("d", Arc::new(d)),
        ("b", Arc::new(b)),
        ("u", Arc::new(u)),
        ("un", Arc::new(un)),
        ("big", Arc::new(big)),
    ];
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .expect("batch")
}

/// `config` as the embedded recipe sets it: each partition sorted in one piece, so sorts are
/// packed-key sorts.
pub(crate) fn in_place(mut config: SessionConfig) -> SessionConfig {
    config.options_mut().execution.sort_in_place_threshold_bytes = 1 << 30;
    config
}

/// A session (with or without our rewrites) whose table `name` is `pieces`, one partition.
pub(crate) fn session_over(
    config: SessionConfig,
    rewrites: bool,
    name: &str,
    pieces: &[RecordBatch],
) -> SessionContext {
    with_table(ctx_with(config, rewrites).expect("ctx"), name, pieces)
}

/// `ctx` with table `name` = `pieces`, one partition.
fn with_table(ctx: SessionContext, name: &str, pieces: &[RecordBatch]) -> SessionContext {
    let table = MemTable::try_new(pieces[0].schema(), vec![pieces.to_vec()]).expect("table");
    ctx.register_table(name, Arc::new(table)).expect("register");
    ctx
}

/// Every row of the result as text (doubles with their sign and NaN payload's sign), and the
/// physical plan.
pub(crate) async fn result_rows(ctx: &SessionContext, sql: &str) -> (Vec<String>, String) {
    let frame = ctx.sql(sql).await.expect("plan");
    let plan = frame
        .clone()
        .create_physical_plan()
        .await
        .expect("physical");
    let plan = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    let batches = frame.collect().await.expect("run");
    (rows_of(&batches), plan)
}

/// Every row of `batches` as text (see [`result_rows`]).
pub(crate) fn rows_of(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = vec![];
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("format"))
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = batch
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(column, f)| match column.data_type() {
                    DataType::Float64 => {
                        let values = arrow::array::AsArray::as_primitive::<
                            arrow::datatypes::Float64Type,
                        >(column);
                        format!("{:016x}", values.value(row).to_bits())
                    }
                    _ => f.value(row).to_string(),
                })
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

#[tokio::test]
async fn key_sorts_order_rows_as_datafusion_sorts() {
    let mut rng = TestRng::new(23);
    let rows = 2_000;
    let batch = table(&mut rng, rows);
    let mut pieces = vec![];
    let mut start = 0;
    while start < rows {
        let len = (1 + rng.below(300) as usize).min(rows - start);
        pieces.push(batch.slice(start, len));
        start += len;
    }
    // Keys that make the order total (`id` last) compare whole rows; keys with ties compare
    // the key columns only (DataFusion leaves tied rows in any order).
    let total = [
        "i, id",
        "i DESC NULLS LAST, f NULLS FIRST, id",
        "f, id",
        "f DESC NULLS LAST, id DESC",
        "s NULLS FIRST, d DESC, id",
        "s DESC NULLS LAST, id",
        "v, d, id",
        "v DESC, d DESC NULLS FIRST, id",
        "d, v, id",
        "b, i NULLS FIRST, id",
        "u, id",
        "u DESC, id",
        "un NULLS FIRST, id",
        "un DESC NULLS LAST, id",
        "big DESC, id",
        // Wider than 128 bits: compared by Arrow's lexsort.
        "f, u, big, i, id",
        "length(s) DESC, id",
        "i % 7 DESC, id",
    ];
    let tied = [
        ("i, d", "i, d"),
        ("v DESC, b", "v, b"),
        ("f NULLS FIRST", "f"),
        ("s", "s"),
    ];
    let reference = session_over(
        SessionConfig::new().with_target_partitions(3),
        false,
        "t",
        &pieces,
    );
    for (batch_size, partitions) in [(1, 1), (7, 3), (256, 2), (8192, 1)] {
        let config = SessionConfig::new()
            .with_target_partitions(partitions)
            .with_batch_size(batch_size);
        let ctx = session_over(in_place(config), true, "t", &pieces);
        for keys in total {
            let sql = format!("SELECT * FROM t ORDER BY {keys}");
            let (expected, reference_plan) = result_rows(&reference, &sql).await;
            let (actual, plan) = result_rows(&ctx, &sql).await;
            assert!(!reference_plan.contains("KeySortExec"), "{reference_plan}");
            assert!(plan.contains("KeySortExec"), "{keys}:\n{plan}");
            assert_eq!(actual.len(), rows);
            let first_difference = expected.iter().zip(&actual).position(|(e, a)| e != a);
            assert_eq!(
                first_difference, None,
                "ORDER BY {keys}, batch size {batch_size}"
            );
        }
        for (keys, shown) in tied {
            let sql = format!("SELECT {shown} FROM t ORDER BY {keys}");
            let (expected, _) = result_rows(&reference, &sql).await;
            let (actual, plan) = result_rows(&ctx, &sql).await;
            assert!(plan.contains("KeySortExec"), "{keys}:\n{plan}");
            assert_eq!(expected, actual, "ORDER BY {keys}, batch size {batch_size}");
        }
        // TopK and types without codes stay DataFusion's.
        for sql in [
            "SELECT * FROM t ORDER BY i, id LIMIT 5",
            "SELECT * FROM t ORDER BY CAST(i AS DECIMAL(12, 2)), id",
        ] {
            let (expected, _) = result_rows(&reference, sql).await;
            let (actual, plan) = result_rows(&ctx, sql).await;
            assert!(!plan.contains("KeySortExec"), "{sql}:\n{plan}");
            assert_eq!(expected, actual, "{sql}");
        }
    }
}

#[tokio::test]
async fn key_sorts_handle_empty_and_single_row_inputs() {
    let ctx = ctx_with(
        in_place(SessionConfig::new().with_target_partitions(2)),
        true,
    )
    .expect("ctx");
    for (sql, expected) in [
        (
            "SELECT x FROM (VALUES (1), (2)) AS v(x) WHERE x > 5 ORDER BY x",
            0,
        ),
        ("SELECT x FROM (VALUES (3)) AS v(x) ORDER BY x DESC", 1),
        (
            "SELECT x FROM (VALUES (CAST(NULL AS INT)), (NULL)) AS v(x) ORDER BY x",
            2,
        ),
    ] {
        let (out, _) = result_rows(&ctx, sql).await;
        assert_eq!(out.len(), expected, "{sql}");
    }
}

/// A panel of `dates` × 60 securities (unique `(t, g)`), rows in a scrambled order.
fn panel(rng: &mut TestRng, dates: i64) -> RecordBatch {
    let mut cells: Vec<(i64, i64)> = (0..dates)
        .flat_map(|t| (0..60).map(move |g| (t, g)))
        .collect();
    for k in (1..cells.len()).rev() {
        cells.swap(k, rng.below(k as u64 + 1) as usize);
    }
    let x: Float64Array = cells
        .iter()
        .map(|_| (rng.below(12) != 0).then(|| 1e3 * (rng.uniform() - 0.4)))
        .collect();
    let y: Float64Array = cells.iter().map(|_| Some(rng.uniform())).collect();
    let schema = Schema::new(vec![
        Field::new("t", DataType::Int64, false),
        Field::new("g", DataType::Utf8, false),
        Field::new("x", DataType::Float64, true),
        Field::new("y", DataType::Float64, true),
    ]);
    let t: Int64Array = cells.iter().map(|(t, _)| Some(*t)).collect();
    let g: StringArray = cells
        .iter()
        .map(|(_, g)| Some(format!("S{g:03}")))
        .collect();
    RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(t), Arc::new(g), Arc::new(x), Arc::new(y)],
    )
    .expect("panel")
}

fn sorts_in(plan: &str) -> usize {
    plan.lines()
        .filter(|l| l.trim_start().starts_with("SortExec:") || l.contains("KeySortExec:"))
        .count()
}

#[tokio::test]
async fn a_sort_that_extends_the_window_sort_below_it_is_merged_into_it() {
    let mut rng = TestRng::new(5);
    let batch = panel(&mut rng, 40);
    let pieces: Vec<RecordBatch> = (0..batch.num_rows())
        .step_by(173)
        .map(|s| batch.slice(s, 173.min(batch.num_rows() - s)))
        .collect();
    let reference = session_over(
        SessionConfig::new().with_target_partitions(3),
        false,
        "p",
        &pieces,
    );
    let window = "cs_rank(x) OVER (PARTITION BY t) AS r, \
                  fm_residual(x, y) OVER (PARTITION BY t) AS e";
    // (query, sorts left with the rule): the outer keys extend `PARTITION BY t` with plain
    // columns (merged), or use a window's output or an expression (both sorts stay).
    let cases = [
        (format!("SELECT t, g, {window} FROM p ORDER BY t, g"), 1),
        (
            format!("SELECT g AS name, t AS day, {window} FROM p ORDER BY day, name DESC"),
            1,
        ),
        (format!("SELECT t, g, {window} FROM p ORDER BY t, r, g"), 2),
        (
            format!("SELECT t, g, {window} FROM p ORDER BY t, lower(g)"),
            2,
        ),
        (format!("SELECT t, g, {window} FROM p ORDER BY g, t"), 2),
    ];
    let mut residuals = vec![];
    for (partitions, batch_size) in [(1, 8192), (3, 50), (4, 7)] {
        for sort_in_place in [false, true] {
            let config = SessionConfig::new()
                .with_target_partitions(partitions)
                .with_batch_size(batch_size);
            let config = if sort_in_place {
                in_place(config)
            } else {
                config
            };
            let ctx = session_over(config, true, "p", &pieces);
            for (sql, sorts) in &cases {
                let (expected, reference_plan) = result_rows(&reference, sql).await;
                let (actual, plan) = result_rows(&ctx, sql).await;
                assert_eq!(sorts_in(&reference_plan), 2, "{reference_plan}");
                assert_eq!(sorts_in(&plan), *sorts, "{sql}:\n{plan}");
                assert_eq!(actual.len(), batch.num_rows());
                // Ranks are exact; the residuals' last bits follow the row order within a
                // date, which the reference leaves to chance: compare them to 1e-12.
                for (e, a) in expected.iter().zip(&actual) {
                    let (e, a): (Vec<&str>, Vec<&str>) =
                        (e.split('|').collect(), a.split('|').collect());
                    assert_eq!(e[..3], a[..3], "{sql}");
                    let bits = |s: &str| f64::from_bits(u64::from_str_radix(s, 16).expect("hex"));
                    let (re, ra) = (bits(e[3]), bits(a[3]));
                    assert!(
                        re == ra || (re - ra).abs() < 1e-12 || (re.is_nan() && ra.is_nan()),
                        "{sql}: {re} {ra}"
                    );
                }
            }
            let (merged, _) = result_rows(&ctx, &cases[0].0).await;
            residuals.push(merged);
        }
    }
    // With the merged sort every date's rows reach the windows in `g` order: the residuals
    // are the same to the bit whatever the partitions, batches and sort.
    assert!(residuals.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn key_sorts_of_many_tiny_batches_equal_datafusions() {
    // More than 1,024 input batches: the partition is concatenated before it is sorted.
    let mut rng = TestRng::new(41);
    let batch = table(&mut rng, 1_500);
    let pieces: Vec<RecordBatch> = (0..batch.num_rows()).map(|r| batch.slice(r, 1)).collect();
    let config = SessionConfig::new().with_target_partitions(1);
    let reference = session_over(config.clone(), false, "t", &pieces);
    let ctx = session_over(in_place(config), true, "t", &pieces);
    let sql = "SELECT * FROM t ORDER BY s DESC, f, id";
    let (expected, _) = result_rows(&reference, sql).await;
    let (actual, plan) = result_rows(&ctx, sql).await;
    assert!(plan.contains("KeySortExec"), "{plan}");
    assert_eq!(expected, actual);
}

/// A session under a fair memory pool of `pool_bytes` (a worker's kind), sorts in place, our
/// rewrites on, table `t` = `pieces` in one partition.
fn bounded_session(pool_bytes: usize, pieces: &[RecordBatch]) -> SessionContext {
    use datafusion::execution::memory_pool::FairSpillPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(pool_bytes)))
        .build_arc()
        .expect("runtime");
    let mut config = in_place(SessionConfig::new().with_target_partitions(1));
    // DataFusion's spilling sort sets this much aside for its merge (10 MiB by default).
    config.options_mut().execution.sort_spill_reservation_bytes = 64 << 10;
    let ctx = ctx_with_runtime(config, true, Some(runtime)).expect("ctx");
    with_table(ctx, "t", pieces)
}

/// The rows of `sql` as text and the value of `KeySortExec`'s spill counter.
async fn rows_and_spills(ctx: &SessionContext, sql: &str) -> (Vec<String>, usize) {
    use lendfusion_udfs::planning::key_sort::SPILLED_METRIC;
    let (rows, spills) = rows_and_metric(ctx, sql, SPILLED_METRIC).await;
    (rows, spills.expect("a KeySortExec in the plan"))
}

/// The rows of `sql` as text and the sum of `metric` over the plan's `KeySortExec`s (`None`
/// when it has none).
async fn rows_and_metric(
    ctx: &SessionContext,
    sql: &str,
    metric: &str,
) -> (Vec<String>, Option<usize>) {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::physical_plan::collect;
    use lendfusion_udfs::planning::key_sort::KeySortExec;
    let plan = ctx
        .sql(sql)
        .await
        .expect("plan")
        .create_physical_plan()
        .await
        .expect("physical");
    let batches = collect(Arc::clone(&plan), ctx.task_ctx())
        .await
        .expect("run");
    let mut sum = None;
    plan.apply(|node| {
        if node.downcast_ref::<KeySortExec>().is_some() {
            let value = node.metrics().and_then(|m| m.sum_by_name(metric));
            *sum.get_or_insert(0) += value.map_or(0, |v| v.as_usize());
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("walk");
    (rows_of(&batches), sum)
}

#[tokio::test]
async fn a_key_sort_beyond_the_memory_pool_spills_through_datafusions_sort() {
    let mut rng = TestRng::new(77);
    let batch = table(&mut rng, 30_000);
    let pieces: Vec<RecordBatch> = (0..batch.num_rows())
        .step_by(1_000)
        .map(|s| batch.slice(s, 1_000))
        .collect();
    let reference = session_over(
        SessionConfig::new().with_target_partitions(1),
        false,
        "t",
        &pieces,
    );
    let bytes: usize = pieces.iter().map(|b| b.get_array_memory_size()).sum();
    for sql in [
        "SELECT * FROM t ORDER BY s DESC NULLS LAST, d, id",
        "SELECT * FROM t ORDER BY f NULLS FIRST, id DESC",
    ] {
        let (expected, _) = result_rows(&reference, sql).await;
        // Room for the partition twice: sorted in memory.
        let (in_memory, spills) = rows_and_spills(&bounded_session(4 * bytes, &pieces), sql).await;
        assert_eq!(spills, 0, "{sql}");
        assert_eq!(in_memory, expected, "{sql}");
        // Room for a third of it: the buffered batches and the rest go to the spilling sort.
        let (spilled, spills) = rows_and_spills(&bounded_session(bytes / 3, &pieces), sql).await;
        assert_eq!(spills, 1, "{sql}");
        assert_eq!(spilled, expected, "{sql}");
        // Room for the input but not its gathered copy: spilled too.
        let (spilled, spills) =
            rows_and_spills(&bounded_session(bytes * 3 / 2, &pieces), sql).await;
        assert_eq!(spills, 1, "{sql}");
        assert_eq!(spilled, expected, "{sql}");
    }
}

#[tokio::test]
async fn a_partition_that_arrives_sorted_passes_through_and_one_that_does_not_is_sorted() {
    use lendfusion_udfs::planning::key_sort::IN_ORDER_METRIC;
    let mut rng = TestRng::new(5);
    let batch = table(&mut rng, 3_000);
    let keys = "s NULLS FIRST, d DESC, i, id";
    let sql = format!("SELECT * FROM t ORDER BY {keys}");
    let config = SessionConfig::new().with_target_partitions(1);
    // The table in the order asked for, in pieces of varied length.
    let sorted = session_over(config.clone(), false, "t", &[batch])
        .sql(&sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("sorted");
    let sorted = arrow::compute::concat_batches(&sorted[0].schema(), &sorted).expect("concat");
    let mut pieces = vec![];
    let mut start = 0;
    while start < sorted.num_rows() {
        let len = (1 + rng.below(400) as usize).min(sorted.num_rows() - start);
        pieces.push(sorted.slice(start, len));
        start += len;
    }
    let (expected, _) = result_rows(&session_over(config.clone(), false, "t", &pieces), &sql).await;
    let (actual, passed) = rows_and_metric(
        &session_over(in_place(config.clone()), true, "t", &pieces),
        &sql,
        IN_ORDER_METRIC,
    )
    .await;
    assert_eq!(passed, Some(1));
    assert_eq!(actual, expected);
    assert_eq!(actual, rows_of(&pieces));
    // The same rows with the last two of one piece swapped (`id` makes every key distinct).
    let at = pieces
        .iter()
        .position(|piece| piece.num_rows() > 1)
        .expect("a piece of two rows or more");
    let n = pieces[at].num_rows();
    let swapped = arrow::compute::take_record_batch(
        &pieces[at],
        &UInt64Array::from_iter_values((0..n as u64 - 2).chain([n as u64 - 1, n as u64 - 2])),
    )
    .expect("swap");
    pieces[at] = swapped;
    let (expected, _) = result_rows(&session_over(config.clone(), false, "t", &pieces), &sql).await;
    let (actual, passed) = rows_and_metric(
        &session_over(in_place(config), true, "t", &pieces),
        &sql,
        IN_ORDER_METRIC,
    )
    .await;
    assert_eq!(passed, Some(0));
    assert_eq!(actual, expected);
}
