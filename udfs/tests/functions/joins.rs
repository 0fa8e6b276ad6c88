//! Joins merged on a sorted build side (`MergeJoinExec`) give exactly the rows of DataFusion's
//! hash join — sorted and unsorted inputs on either side, duplicate keys, NULL keys, empty
//! partitions, projections, several key types, tiny batches — and keep the right input's order.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray, StringViewArray,
};
use arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{JoinType, NullEquality};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::col;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning, collect_partitioned, displayable};
use datafusion::prelude::{SessionConfig, SessionContext};
use lendfusion_udfs::planning::RECOMPUTE;
use lendfusion_udfs::planning::merge_join::{HASHED_METRIC, MergeJoinExec, with_merge_joins};

use crate::TestRng;

/// How one side's rows are drawn.
#[derive(Clone, Copy)]
struct Draw {
    rows: usize,
    /// Distinct `(d, s)` keys to draw from (fewer than rows: duplicates).
    keys: u64,
    /// One in `nulls` keys has a NULL in one column (0: none).
    nulls: u64,
    sorted: bool,
    /// `s` as `Utf8View` (else `Utf8`).
    view: bool,
    /// Keys `0..rows`, each once (`keys` unused): two such sides match one to one.
    unique: bool,
}

fn schema(prefix: &str, view: bool) -> SchemaRef {
    let text = if view {
        DataType::Utf8View
    } else {
        DataType::Utf8
    };
    Arc::new(Schema::new(vec![
        Field::new("d", DataType::Date32, true),
        Field::new("s", text, true),
        Field::new(format!("{prefix}_row"), DataType::Int64, false),
        Field::new(format!("{prefix}_n"), DataType::Int32, true),
    ]))
}

/// `partitions` partitions of rows drawn by `draw`, `row` numbering them in input order.
fn side(rng: &mut TestRng, prefix: &str, draw: Draw, partitions: usize) -> Vec<Vec<RecordBatch>> {
    let schema = schema(prefix, draw.view);
    let mut d = Vec::with_capacity(draw.rows);
    let mut s = Vec::with_capacity(draw.rows);
    for row in 0..draw.rows {
        let key = if draw.unique {
            row as u64
        } else {
            rng.below(draw.keys)
        };
        let null = draw.nulls > 0 && rng.below(draw.nulls) == 0;
        let which = rng.below(2);
        d.push((!(null && which == 0)).then_some(18_000 + (key / 7) as i32));
        s.push((!(null && which == 1)).then(|| format!("SEC{:04}", key % 7 * 13)));
    }
    let text: ArrayRef = if draw.view {
        Arc::new(StringViewArray::from_iter(s.iter().map(|s| s.as_deref())))
    } else {
        Arc::new(StringArray::from_iter(s.iter().map(|s| s.as_deref())))
    };
    let n: Int32Array = (0..draw.rows)
        .map(|_| (rng.below(5) != 0).then(|| rng.below(100) as i32))
        .collect();
    let mut batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Date32Array::from(d)),
            text,
            Arc::new(Int64Array::from_iter_values(0..draw.rows as i64)),
            Arc::new(n),
        ],
    )
    .expect("join test step");
    if draw.sorted {
        let keys = [0, 1].map(|c| SortColumn {
            values: Arc::clone(batch.column(c)),
            options: None,
        });
        let order = lexsort_to_indices(&keys, None).expect("join test step");
        batch = take_record_batch(&batch, &order).expect("join test step");
        // Renumber: `row` is the position in the input as it is read.
        let mut columns = batch.columns().to_vec();
        columns[2] = Arc::new(Int64Array::from_iter_values(0..draw.rows as i64));
        batch = RecordBatch::try_new(Arc::clone(&schema), columns).expect("join test step");
    }
    // Contiguous runs per partition (the first may be empty), in batches of 1 to 40 rows.
    let mut cuts: Vec<usize> = (1..partitions)
        .map(|_| rng.below(draw.rows as u64 + 1) as usize)
        .collect();
    cuts.push(0);
    cuts.push(draw.rows);
    cuts.sort_unstable();
    cuts.windows(2)
        .map(|run| {
            let mut batches = vec![];
            let mut at = run[0];
            while at < run[1] {
                let len = (1 + rng.below(40) as usize).min(run[1] - at);
                batches.push(batch.slice(at, len));
                at += len;
            }
            batches
        })
        .collect()
}

/// The partitioned hash join of the two sides on `(s, d)`, with `projection`.
fn hash_join(
    left: &[Vec<RecordBatch>],
    right: &[Vec<RecordBatch>],
    schemas: (SchemaRef, SchemaRef),
    projection: Option<Vec<usize>>,
) -> Arc<dyn ExecutionPlan> {
    let (left_schema, right_schema) = schemas;
    let left = MemorySourceConfig::try_new_exec(left, Arc::clone(&left_schema), None)
        .expect("join test step");
    let right = MemorySourceConfig::try_new_exec(right, Arc::clone(&right_schema), None)
        .expect("join test step");
    let key = |name: &str, schema: &Schema| -> Arc<dyn PhysicalExpr> {
        col(name, schema).expect("join test step")
    };
    let on = vec![
        (key("s", &left_schema), key("s", &right_schema)),
        (key("d", &left_schema), key("d", &right_schema)),
    ];
    Arc::new(
        HashJoinExec::try_new(
            left,
            right,
            on,
            None,
            &JoinType::Inner,
            projection,
            PartitionMode::Partitioned,
            NullEquality::NullEqualsNothing,
            false,
        )
        .expect("join test step"),
    )
}

/// Every partition's output rows, formatted.
fn rows(partitions: &[Vec<RecordBatch>]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    partitions
        .iter()
        .map(|batches| {
            let mut out = vec![];
            for batch in batches {
                let formatters: Vec<_> = batch
                    .columns()
                    .iter()
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("join test step"))
                    .collect();
                for i in 0..batch.num_rows() {
                    let row: Vec<String> =
                        formatters.iter().map(|f| f.value(i).to_string()).collect();
                    out.push(row.join("|"));
                }
            }
            out
        })
        .collect()
}

/// Runs the case both ways; returns the partitions handed to the hash join.
async fn check(
    seed: u64,
    left: Draw,
    right: Draw,
    partitions: usize,
    projection: Option<Vec<usize>>,
) -> usize {
    let mut rng = TestRng::new(seed);
    let left_batches = side(&mut rng, "l", left, partitions);
    let right_batches = side(&mut rng, "r", right, partitions);
    let schemas = (schema("l", left.view), schema("r", right.view));
    let hashed = hash_join(
        &left_batches,
        &right_batches,
        schemas.clone(),
        projection.clone(),
    );
    let merged: Arc<dyn ExecutionPlan> = Arc::new(
        MergeJoinExec::try_new(&hash_join(
            &left_batches,
            &right_batches,
            schemas,
            projection.clone(),
        ))
        .expect("an inner equi-join on dates and strings is merged"),
    );
    assert_eq!(merged.schema(), hashed.schema());
    let config = SessionConfig::new().with_batch_size(7);
    let task = || {
        Arc::new(TaskContext::from(&SessionContext::new_with_config(
            config.clone(),
        )))
    };
    let expected = rows(
        &collect_partitioned(Arc::clone(&hashed), task())
            .await
            .expect("join test step"),
    );
    let got_batches = collect_partitioned(Arc::clone(&merged), task())
        .await
        .expect("join test step");
    assert!(got_batches.iter().flatten().all(|b| b.num_rows() <= 7));
    let got = rows(&got_batches);
    for (partition, (mut got, mut expected)) in got.into_iter().zip(expected).enumerate() {
        // The right's row number is its input order: the output keeps it.
        let right_row = merged.schema().index_of("r_row");
        if let Ok(column) = right_row {
            let order: Vec<i64> = got_batches[partition]
                .iter()
                .flat_map(|b| {
                    let c = b
                        .column(column)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .expect("join test step");
                    c.values().to_vec()
                })
                .collect();
            assert!(
                order.is_sorted(),
                "seed {seed} partition {partition}: {order:?}"
            );
        }
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "seed {seed} partition {partition}");
    }
    let metrics = merged.metrics().expect("join test step");
    metrics
        .sum_by_name(HASHED_METRIC)
        .map_or(0, |m| m.as_usize())
}

const PANEL: Draw = Draw {
    rows: 400,
    keys: 500,
    nulls: 0,
    sorted: true,
    view: true,
    unique: false,
};

#[tokio::test]
async fn sorted_build_sides_merge_to_the_hash_joins_rows() {
    for seed in 0..20 {
        // The panel's shape: both sides sorted, keys nearly unique.
        assert_eq!(check(seed, PANEL, PANEL, 3, None).await, 0);
        // Every key once on both sides (stretches of the left matched one to one are sliced),
        // and the right in any order.
        let once = Draw {
            unique: true,
            ..PANEL
        };
        assert_eq!(check(seed, once, once, 3, None).await, 0);
        assert_eq!(check(seed, once, once, 1, Some(vec![5, 2, 0])).await, 0);
        let once_shuffled = Draw {
            sorted: false,
            ..once
        };
        assert_eq!(check(seed, once, once_shuffled, 2, None).await, 0);
        // Duplicates and NULL keys on both sides, the right in any order, one partition.
        let dup = Draw {
            rows: 300,
            keys: 40,
            nulls: 6,
            ..PANEL
        };
        let shuffled = Draw {
            sorted: false,
            ..dup
        };
        assert_eq!(check(seed, dup, shuffled, 1, None).await, 0);
        assert_eq!(check(seed, dup, dup, 4, Some(vec![6, 0, 3, 1])).await, 0);
        // Utf8 keys, more partitions than some sides have rows.
        let plain = Draw {
            rows: 30,
            view: false,
            ..dup
        };
        assert_eq!(check(seed, plain, plain, 8, Some(vec![2, 6])).await, 0);
        // Null-free keys compare directly (dates, Utf8 and Utf8View strings).
        let clean = Draw { nulls: 0, ..plain };
        assert_eq!(check(seed, clean, clean, 2, None).await, 0);
        let clean_view = Draw {
            view: true,
            ..clean
        };
        assert_eq!(check(seed, clean_view, clean_view, 2, None).await, 0);
    }
}

#[tokio::test]
async fn unsorted_build_sides_go_to_the_hash_join() {
    let unsorted = Draw {
        rows: 300,
        keys: 60,
        nulls: 8,
        sorted: false,
        view: true,
        unique: false,
    };
    for seed in 0..10 {
        assert_eq!(check(seed, unsorted, unsorted, 1, None).await, 1);
        // Partitions of one row are sorted; the others almost surely not.
        assert!(check(seed, unsorted, PANEL, 3, Some(vec![7, 2])).await >= 1);
    }
}

#[test]
fn other_joins_are_left_to_datafusion() {
    let batch = |prefix: &str| vec![vec![RecordBatch::new_empty(schema(prefix, true))]];
    let schemas = (schema("l", true), schema("r", true));
    let join = hash_join(&batch("l"), &batch("r"), schemas.clone(), None);
    assert!(MergeJoinExec::try_new(&join).is_some());
    let join = join.downcast_ref::<HashJoinExec>().expect("join test step");
    let left_join = join
        .builder()
        .with_type(JoinType::Left)
        .build_exec()
        .expect("join test step");
    assert!(MergeJoinExec::try_new(&left_join).is_none());
    let collect_left = join
        .builder()
        .with_partition_mode(PartitionMode::CollectLeft)
        .build_exec()
        .expect("join test step");
    assert!(MergeJoinExec::try_new(&collect_left).is_none());
    let nulls_equal = join
        .builder()
        .with_null_equality(NullEquality::NullEqualsNull)
        .build_exec()
        .expect("join test step");
    assert!(MergeJoinExec::try_new(&nulls_equal).is_none());
    // Float keys: the hash join's NaN and signed-zero equality is not the comparator's.
    let float = |prefix: &str| {
        Arc::new(Schema::new(vec![Field::new(
            prefix,
            DataType::Float64,
            true,
        )])) as SchemaRef
    };
    let (l, r) = (float("x"), float("y"));
    let on = vec![(
        col("x", &l).expect("join test step"),
        col("y", &r).expect("join test step"),
    )];
    let source = |s: &SchemaRef| {
        MemorySourceConfig::try_new_exec(&[vec![]], Arc::clone(s), None).expect("join test step")
            as Arc<dyn ExecutionPlan>
    };
    let float_join: Arc<dyn ExecutionPlan> = Arc::new(
        HashJoinExec::try_new(
            source(&l),
            source(&r),
            on,
            None,
            &JoinType::Inner,
            None,
            PartitionMode::Partitioned,
            NullEquality::NullEqualsNothing,
            false,
        )
        .expect("join test step"),
    );
    assert!(MergeJoinExec::try_new(&float_join).is_none());
}

/// Joins over sources read directly (through projections) are merged; a join over a
/// repartition (rows in no stored order) keeps the hash join.
#[test]
fn only_joins_that_read_their_sources_directly_are_merged() {
    let batch = |prefix: &str| vec![vec![RecordBatch::new_empty(schema(prefix, true))]];
    let schemas = (schema("l", true), schema("r", true));
    let join = hash_join(&batch("l"), &batch("r"), schemas, None);
    let shown = |plan: Arc<dyn ExecutionPlan>| {
        let plan = with_merge_joins(plan).expect("rewrite");
        displayable(plan.as_ref()).indent(false).to_string()
    };
    assert!(shown(Arc::clone(&join)).contains("MergeJoinExec"));
    let [left, right] = [0, 1].map(|i| Arc::clone(join.children()[i]));
    let projected: Arc<dyn ExecutionPlan> = Arc::new(
        ProjectionExec::try_new(
            (0..4).map(|i| {
                let field = left.schema().field(i).clone();
                (
                    col(field.name(), &left.schema()).expect("column"),
                    field.name().clone(),
                )
            }),
            Arc::clone(&left),
        )
        .expect("projection"),
    );
    let over_projection = Arc::clone(&join)
        .replace_children(vec![projected, Arc::clone(&right)], RECOMPUTE)
        .expect("join");
    assert!(shown(over_projection).contains("MergeJoinExec"));
    let keys = vec![col("d", &left.schema()).expect("column")];
    let repartitioned: Arc<dyn ExecutionPlan> =
        Arc::new(RepartitionExec::try_new(left, Partitioning::Hash(keys, 1)).expect("repartition"));
    let over_repartition = join
        .replace_children(vec![repartitioned, right], RECOMPUTE)
        .expect("join");
    let plan = shown(over_repartition);
    assert!(
        plan.contains("HashJoinExec") && !plan.contains("MergeJoinExec"),
        "{plan}"
    );
}
