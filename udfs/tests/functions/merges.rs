//! Merges of partitions split by a prefix of the sort keys (`RunMergeExec`, embedded
//! sessions) give the rows in the order DataFusion's `SortPreservingMergeExec` does: dates,
//! strings and pairs of keys, NULLs first and last, both directions, runs cut by batch ends,
//! empty partitions, and keys so short that the merge hands over to DataFusion's.

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::physical_plan::{collect, displayable};
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
