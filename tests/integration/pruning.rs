//! A date filter reads only the partitions, and row groups, that overlap it.

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use object_store::local::LocalFileSystem;
use url::Url;

use crate::support::counting_store::CountingStore;
use crate::support::{generate_local, local_session, options, small_panel, sql};

fn count(batches: &[arrow::record_batch::RecordBatch]) -> i64 {
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

#[tokio::test]
async fn one_month_filter_opens_only_that_month() {
    let (root, _) = small_panel().await;
    let ctx = local_session(root).await;
    let counting = Arc::new(CountingStore::new(Arc::new(LocalFileSystem::new())));
    ctx.runtime_env()
        .register_object_store(&Url::parse("file://").expect("url"), counting.clone());

    let filtered = sql(
        &ctx,
        "SELECT count(*) FROM lending WHERE date >= DATE '2021-03-01' AND date < DATE '2021-04-01'",
    )
    .await;
    let reads = std::mem::take(&mut counting.reads.lock().expect("lock").entries);
    assert!(!reads.is_empty(), "the query read nothing");
    for (path, _) in &reads {
        assert!(
            path.contains("lending/month=2021-03/"),
            "read outside the month: {path}"
        );
    }
    // Same answer as filtering without pruning help (a cast hides the column from pruning).
    let unpruned = sql(
        &ctx,
        "SELECT count(*) FROM lending WHERE CAST(date AS VARCHAR) LIKE '2021-03-%'",
    )
    .await;
    assert_eq!(count(&filtered), count(&unpruned));
    assert!(count(&filtered) > 0);

    // Equality, BETWEEN and string literals prune the same way.
    for query in [
        "SELECT count(*) FROM market WHERE date = '2021-03-15'",
        "SELECT count(*) FROM market WHERE date BETWEEN '2021-03-02' AND '2021-03-20'",
    ] {
        counting.reads.lock().expect("lock").entries.clear();
        sql(&ctx, query).await;
        let reads = std::mem::take(&mut counting.reads.lock().expect("lock").entries);
        assert!(!reads.is_empty());
        for (path, _) in &reads {
            assert!(
                path.contains("market/month=2021-03/"),
                "{query} read {path}"
            );
        }
    }
}

#[tokio::test]
async fn a_single_date_skips_row_groups_of_other_days() {
    // Enough securities that one month file holds several row groups.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("wide");
    let summary = generate_local(&options(&root, 10_000, "2021-02-01", "2021-02-26", 3)).await;
    assert!(summary.rows["lending"] > 2 * 65_536);
    let ctx = local_session(&root).await;
    let counting = Arc::new(CountingStore::new(Arc::new(LocalFileSystem::new())));
    ctx.runtime_env()
        .register_object_store(&Url::parse("file://").expect("url"), counting.clone());
    let bytes_read = |query: &'static str| {
        let ctx = &ctx;
        let counting = counting.clone();
        async move {
            let batches = sql(ctx, query).await;
            let bytes: u64 = std::mem::take(&mut counting.reads.lock().expect("lock").entries)
                .iter()
                .map(|(_, b)| b)
                .sum();
            (count(&batches), bytes)
        }
    };
    // Same columns, whole month versus one day.
    let (all_rows, all_bytes) =
        bytes_read("SELECT count(*), sum(fee_bps) FROM lending WHERE date >= '2021-02-01'").await;
    let (day_rows, day_bytes) =
        bytes_read("SELECT count(*), sum(fee_bps) FROM lending WHERE date = '2021-02-24'").await;
    assert_eq!(all_rows as u64, summary.rows["lending"]);
    assert!(day_rows > 3_000);
    assert!(
        day_bytes * 2 < all_bytes,
        "one day fetched {day_bytes} bytes, the whole month {all_bytes}: row groups were not pruned"
    );
}
