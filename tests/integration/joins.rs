//! Joins on `date` read both tables partition-aligned instead of hash-repartitioned
//! (`lendfusion_core::aligned_join`), inner ones merged on the sorted files
//! (`lendfusion_udfs::planning::merge_join`), with the answers of DataFusion's own plans.

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::context::SessionContext;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use lendfusion_udfs::planning::key_sort::{IN_ORDER_METRIC, KeySortExec};
use lendfusion_udfs::planning::merge_join::{HASHED_METRIC, MergeJoinExec};

use crate::support::cluster::assert_same_results;
use crate::support::{local_session, small_panel, sql};

const JOIN: &str = "lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id";

async fn plan_of(ctx: &SessionContext, query: &str) -> Arc<dyn ExecutionPlan> {
    ctx.sql(query)
        .await
        .expect("sql")
        .create_physical_plan()
        .await
        .expect("plan")
}

async fn physical_plan(ctx: &SessionContext, query: &str) -> String {
    let plan = plan_of(ctx, query).await;
    displayable(plan.as_ref()).indent(false).to_string()
}

/// Runs `query`'s plan; the sum of `metric` over its nodes of type `T`, or `None` when it has
/// none.
async fn metric_sum<T: ExecutionPlan>(
    ctx: &SessionContext,
    query: &str,
    metric: &str,
) -> Option<usize> {
    let plan = plan_of(ctx, query).await;
    collect(Arc::clone(&plan), ctx.task_ctx())
        .await
        .expect("run");
    let mut sum = None;
    plan.apply(|node| {
        if node.downcast_ref::<T>().is_some() {
            let value = node.metrics().and_then(|m| m.sum_by_name(metric));
            *sum.get_or_insert(0) += value.map_or(0, |m| m.as_usize());
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("walk");
    sum
}

/// Runs `query`'s plan; the number of its merge joins' partitions that went to the hash join
/// (their build side was not sorted), or `None` when it has no merge join.
async fn partitions_hashed(ctx: &SessionContext, query: &str) -> Option<usize> {
    metric_sum::<MergeJoinExec>(ctx, query, HASHED_METRIC).await
}

/// The same query answered by a session whose joins are not partitioned (one hash table over
/// the whole left side): the reference the aligned join must equal.
async fn unpartitioned_answer(
    ctx: &SessionContext,
    query: &str,
) -> Vec<arrow::record_batch::RecordBatch> {
    sql(ctx, "SET datafusion.optimizer.repartition_joins = false").await;
    let answer = sql(ctx, query).await;
    sql(ctx, "SET datafusion.optimizer.repartition_joins = true").await;
    answer
}

#[tokio::test]
async fn joins_on_date_read_both_tables_partition_aligned() {
    let (root, _) = small_panel().await;
    let ctx = local_session(root).await;
    let aligned_queries = [
        // merged into one sorted output
        format!(
            "SELECT l.date, l.security_id, l.fee_bps, m.close FROM {JOIN} \
             ORDER BY l.date, l.security_id"
        ),
        // repartitioned by security for a time-series window
        format!(
            "SELECT l.date, l.security_id, \
               avg(m.volume) OVER (PARTITION BY l.security_id ORDER BY l.date \
                                   ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS adv \
             FROM {JOIN} ORDER BY l.date, l.security_id"
        ),
        // an outer join against a filtered side (rows without a match keep NULLs), and a
        // filter above the join
        "SELECT l.date, l.security_id, m.close FROM lending l \
         LEFT JOIN (SELECT * FROM market WHERE security_id < 'LF000030') m \
           ON l.date = m.date AND l.security_id = m.security_id \
         WHERE l.fee_bps > 20 ORDER BY l.date, l.security_id"
            .to_string(),
        // the keys in the other order, a range of dates that spans many months
        "SELECT m.date, m.security_id, l.on_loan_qty / m.volume AS ratio FROM market m \
         JOIN lending l ON m.security_id = l.security_id AND m.date = l.date \
         WHERE m.date >= DATE '2020-03-01' ORDER BY m.date, m.security_id"
            .to_string(),
    ];
    for query in &aligned_queries {
        let plan = physical_plan(&ctx, query).await;
        // Inner joins merge (the generated files hold their rows in (date, security_id)
        // order, so every build partition arrives sorted); the outer one stays a hash join.
        let inner = !query.contains("LEFT JOIN");
        let join = if inner {
            "MergeJoinExec: mode=Partitioned"
        } else {
            "HashJoinExec: mode=Partitioned"
        };
        assert!(plan.contains(join), "{query}\n{plan}");
        let hashed = partitions_hashed(&ctx, query).await;
        assert_eq!(hashed, inner.then_some(0), "{query}\n{plan}");
        assert!(
            !plan.contains("RepartitionExec: partitioning=Hash([date@0, security_id@1]")
                && !plan.contains("RepartitionExec: partitioning=Hash([security_id@1, date@0]"),
            "the join's inputs are still repartitioned:\n{query}\n{plan}"
        );
        assert!(!plan.contains("DynamicFilter"), "{query}\n{plan}");
        let aligned = sql(&ctx, query).await;
        let expected = unpartitioned_answer(&ctx, query).await;
        assert!(!aligned.is_empty() && aligned.iter().map(|b| b.num_rows()).sum::<usize>() > 0);
        assert_same_results(query, &expected, &aligned);
    }

    // One month has fewer partition values than partitions: the join stays hash-partitioned,
    // and a join on security alone never is aligned.
    let kept_queries = [
        format!(
            "SELECT l.date, l.security_id, m.close FROM {JOIN} \
             WHERE l.date BETWEEN DATE '2021-03-01' AND DATE '2021-03-31' \
             ORDER BY l.date, l.security_id"
        ),
        "SELECT l.date, l.security_id, m.date AS market_date FROM lending l \
         JOIN market m ON l.security_id = m.security_id \
         WHERE l.date = DATE '2021-03-15' AND m.date = DATE '2021-03-16' \
         ORDER BY l.security_id"
            .to_string(),
    ];
    for query in &kept_queries {
        let plan = physical_plan(&ctx, query).await;
        if plan.contains("HashJoinExec: mode=Partitioned") {
            assert!(
                plan.contains("RepartitionExec: partitioning=Hash("),
                "{query}\n{plan}"
            );
        }
        let answer = sql(&ctx, query).await;
        assert_same_results(query, &unpartitioned_answer(&ctx, query).await, &answer);
    }
}

#[tokio::test]
async fn sort_merge_joins_on_date_read_both_tables_partition_aligned_and_sort_nothing() {
    // A cluster plans sort-merge joins (Ballista prefers them, they spill); embedded sessions
    // plan them when told to prefer them too.
    let (root, _) = small_panel().await;
    let ctx = local_session(root).await;
    sql(&ctx, "SET datafusion.optimizer.prefer_hash_join = false").await;
    let queries = [
        format!(
            "SELECT l.date, l.security_id, l.fee_bps, m.close FROM {JOIN} \
             ORDER BY l.date, l.security_id"
        ),
        format!(
            "SELECT l.date, l.security_id, \
               avg(m.volume) OVER (PARTITION BY l.security_id ORDER BY l.date \
                                   ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS adv \
             FROM {JOIN} WHERE l.fee_bps > 20 ORDER BY l.date, l.security_id"
        ),
    ];
    for query in &queries {
        let plan = physical_plan(&ctx, query).await;
        assert!(plan.contains("SortMergeJoinExec"), "{query}\n{plan}");
        assert!(
            !plan.contains("RepartitionExec: partitioning=Hash([date@0, security_id@1]"),
            "the join's inputs are still repartitioned:\n{query}\n{plan}"
        );
        // The generated files hold their rows in (date, security_id) order: every partition
        // of both sorts under the join arrives sorted and is passed on as it came.
        let partitions = ctx.state().config().target_partitions();
        let in_order = metric_sum::<KeySortExec>(&ctx, query, IN_ORDER_METRIC).await;
        assert!(
            in_order >= Some(2 * partitions),
            "{in_order:?}\n{query}\n{plan}"
        );
        let aligned = sql(&ctx, query).await;
        assert!(aligned.iter().map(|b| b.num_rows()).sum::<usize>() > 0);
        assert_same_results(query, &unpartitioned_answer(&ctx, query).await, &aligned);
    }
}
