//! Merges of partitions split by a prefix of the sort keys (`RunMergeExec`, embedded
//! sessions) give the rows in the order DataFusion's `SortPreservingMergeExec` does: dates,
//! strings and pairs of keys, NULLs first and last, both directions, runs cut by batch ends,
//! empty partitions, and keys so short that the merge hands over to DataFusion's.

use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use arrow::array::{ArrayRef, AsArray, Int32Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema};
use datafusion::common::Result as DfResult;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, Partitioning, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
    collect, displayable,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use lendfusion_udfs::planning::run_merge::{HANDED_OVER_METRIC, RunMergeExec};

use crate::TestRng;
use crate::sorts::{in_place, result_rows, rows_of, session_over, table};

/// The rows of `sql` as text, its plan, and how many of its `RunMergeExec`s handed over to
/// DataFusion's merge (`None` when it has none).
async fn rows_and_handovers(
    ctx: &SessionContext,
    sql: &str,
) -> (Vec<String>, String, Option<usize>) {
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
    let mut handovers = None;
    plan.apply(|node| {
        if node.downcast_ref::<RunMergeExec>().is_some() {
            let value = node
                .metrics()
                .and_then(|m| m.sum_by_name(HANDED_OVER_METRIC));
            *handovers.get_or_insert(0) += value.map_or(0, |v| v.as_usize());
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("walk");
    let shown = displayable(plan.as_ref()).indent(true).to_string();
    (rows_of(&batches), shown, handovers)
}

#[tokio::test]
async fn run_merges_order_rows_as_datafusions_merge() {
    let mut rng = TestRng::new(29);
    let rows = 20_000;
    let batch = table(&mut rng, rows);
    let pieces: Vec<_> = (0..rows)
        .step_by(3_000)
        .map(|start| batch.slice(start, 3_000.min(rows - start)))
        .collect();
    // (query, whether its runs are long enough to merge run by run at a batch of 8192)
    let queries = [
        // `d`: 40 dates and NULLs, ~490 rows a run.
        (
            "SELECT d, id, i, s, count(*) OVER (PARTITION BY d) AS n FROM t ORDER BY d, id",
            true,
        ),
        (
            "SELECT d, id, f, sum(i) OVER (PARTITION BY d) AS n FROM t \
             ORDER BY d DESC NULLS LAST, id DESC",
            true,
        ),
        (
            "SELECT s, id, count(*) OVER (PARTITION BY s) AS n FROM t ORDER BY s NULLS FIRST, id",
            true,
        ),
        // Two run keys, in the other order than the partitioning's.
        (
            "SELECT b, d, id, count(*) OVER (PARTITION BY d, b) AS n FROM t \
             ORDER BY b DESC, d NULLS FIRST, id",
            true,
        ),
        // The run key is the row's identity: runs of one row, handed over.
        (
            "SELECT id, d, count(*) OVER (PARTITION BY id) AS n FROM t ORDER BY id DESC",
            false,
        ),
        // ~1.6 rows a run.
        (
            "SELECT v, d, id, count(*) OVER (PARTITION BY v, d) AS n FROM t ORDER BY v, d, id",
            false,
        ),
        // Partitions with no rows.
        (
            "SELECT d, id, count(*) OVER (PARTITION BY d) AS n FROM t WHERE d = 17005 \
             ORDER BY d, id",
            true,
        ),
        (
            "SELECT d, id FROM (SELECT d, id, count(*) OVER (PARTITION BY d) AS n FROM t) \
          WHERE n < 0 ORDER BY d, id",
            true,
        ),
    ];
    let reference = session_over(
        SessionConfig::new().with_target_partitions(3),
        false,
        "t",
        &pieces,
    );
    for (batch_size, partitions) in [(1, 2), (7, 3), (256, 4), (8192, 3)] {
        let config = SessionConfig::new()
            .with_target_partitions(partitions)
            .with_batch_size(batch_size);
        let ctx = session_over(in_place(config), true, "t", &pieces);
        for (sql, long_runs) in queries {
            let (expected, reference_plan) = result_rows(&reference, sql).await;
            assert!(
                reference_plan.contains("SortPreservingMergeExec"),
                "{reference_plan}"
            );
            let (actual, plan, handovers) = rows_and_handovers(&ctx, sql).await;
            assert!(!plan.contains("SortPreservingMergeExec"), "{sql}:\n{plan}");
            let handovers = handovers.unwrap_or_else(|| panic!("{sql}:\n{plan}"));
            if batch_size == 8192 && !sql.contains("n < 0") && !sql.contains("17005") {
                assert_eq!(handovers, usize::from(!long_runs), "{sql}");
            }
            assert_eq!(actual.len(), expected.len(), "{sql}");
            let first_difference = expected.iter().zip(&actual).position(|(e, a)| e != a);
            assert_eq!(first_difference, None, "{sql}, batch size {batch_size}");
        }
    }
}

#[tokio::test]
async fn merges_on_keys_that_may_hash_apart_or_with_a_limit_stay_datafusions() {
    let mut rng = TestRng::new(31);
    let batch = table(&mut rng, 3_000);
    let config = SessionConfig::new().with_target_partitions(3);
    let ctx = session_over(in_place(config), true, "t", &[batch]);
    let reference = session_over(
        SessionConfig::new().with_target_partitions(3),
        false,
        "t",
        &[table(&mut TestRng::new(31), 3_000)],
    );
    for sql in [
        // Doubles: -0 and 0, NaN payloads.
        "SELECT f, id, count(*) OVER (PARTITION BY f) AS n FROM t ORDER BY f, id",
        // The partitioning's key is not among the leading sort keys.
        "SELECT d, id, count(*) OVER (PARTITION BY i) AS n FROM t ORDER BY d, id",
        // A limit is DataFusion's merge's `fetch`.
        "SELECT d, id, count(*) OVER (PARTITION BY d) AS n FROM t ORDER BY d, id LIMIT 17",
    ] {
        let (expected, _) = result_rows(&reference, sql).await;
        let (actual, plan, handovers) = rows_and_handovers(&ctx, sql).await;
        assert_eq!(handovers, None, "{sql}:\n{plan}");
        assert_eq!(actual, expected, "{sql}");
    }
}

/// Two hash partitions of `(d, id)`, sorted, where partition 0 yields nothing until partition
/// 1 has been polled: an input that makes progress only while another is polled, as a
/// repartition's outputs may on a current-thread runtime (where DataFusion's `spawn_buffered`
/// spawns nothing).
#[derive(Debug)]
struct Interlocked {
    batches: [RecordBatch; 2],
    polled: Arc<Mutex<(bool, Option<Waker>)>>,
    properties: Arc<PlanProperties>,
}

impl Interlocked {
    fn new() -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Int32, false),
            Field::new("id", DataType::Int64, false),
        ]));
        let batch = |d: Vec<i32>, id: Vec<i64>| {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int32Array::from(d)),
                Arc::new(Int64Array::from(id)),
            ];
            RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch")
        };
        let ordering = [
            PhysicalSortExpr::new_default(Arc::new(Column::new("d", 0))),
            PhysicalSortExpr::new_default(Arc::new(Column::new("id", 1))),
        ];
        let properties = PlanProperties::new(
            EquivalenceProperties::new_with_orderings(Arc::clone(&schema), [ordering]),
            Partitioning::Hash(vec![Arc::new(Column::new("d", 0))], 2),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            batches: [
                batch(vec![1, 1, 3, 3, 3], vec![1, 2, 1, 4, 5]),
                batch(vec![2, 2, 4], vec![7, 8, 1]),
            ],
            polled: Arc::new(Mutex::new((false, None))),
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for Interlocked {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "Interlocked")
    }
}

impl ExecutionPlan for Interlocked {
    fn name(&self) -> &'static str {
        "Interlocked"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let polled = Arc::clone(&self.polled);
        let mut batch = Some(self.batches[partition].clone());
        let stream = futures::stream::poll_fn(move |cx| {
            let mut state = polled.lock().expect("lock");
            if partition == 1 {
                state.0 = true;
                if let Some(waker) = state.1.take() {
                    waker.wake();
                }
            } else if !state.0 {
                state.1 = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(batch.take().map(Ok))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            stream,
        )))
    }
}

#[tokio::test]
async fn inputs_that_progress_only_together_are_polled_together() {
    let input = Interlocked::new();
    let ordering = LexOrdering::new(
        input
            .properties()
            .eq_properties
            .output_ordering()
            .expect("ordering"),
    )
    .expect("ordering");
    let merge = Arc::new(SortPreservingMergeExec::new(ordering, Arc::new(input)));
    let runs = RunMergeExec::try_new(merge).expect("a run merge");
    let ctx = SessionContext::new();
    // On this (current-thread) runtime: waiting on partition 0 alone would never end.
    let batches = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        collect(Arc::new(runs), ctx.task_ctx()),
    )
    .await
    .expect("the merge must not hang")
    .expect("run");
    let rows: Vec<(i32, i64)> = batches
        .iter()
        .flat_map(|b| {
            let d = b.column(0).as_primitive::<Int32Type>().clone();
            let id = b.column(1).as_primitive::<Int64Type>().clone();
            (0..b.num_rows()).map(move |i| (d.value(i), id.value(i)))
        })
        .collect();
    assert_eq!(
        rows,
        [
            (1, 1),
            (1, 2),
            (2, 7),
            (2, 8),
            (3, 1),
            (3, 4),
            (3, 5),
            (4, 1)
        ]
    );
}
