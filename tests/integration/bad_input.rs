//! Bad files give errors that name the file; nothing crashes and other tables keep working.

use arrow::array::{ArrayRef, Date32Array, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

use crate::support::{copy_tree, local_session, small_panel, sql};

async fn broken_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let (root, _) = small_panel().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("panel");
    copy_tree(root, &copy);
    (dir, copy)
}

async fn error_of(root: &std::path::Path, query: &str) -> String {
    let ctx = local_session(root).await;
    match lendfusion_core::query::collect_sql(&ctx, query).await {
        Ok(_) => panic!("{query} should fail"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn corrupt_parquet_file_is_named() {
    let (_dir, root) = broken_copy().await;
    let bad = root.join("lending/month=2021-06/part-00000.parquet");
    std::fs::write(&bad, b"this is not a parquet file at all").expect("corrupt");
    let err = error_of(&root, "SELECT sum(fee_bps) FROM lending").await;
    assert!(
        err.contains("lending/month=2021-06/part-00000.parquet"),
        "{err}"
    );
    assert!(err.contains("not a readable Parquet file"), "{err}");

    // The rest of the dataset is still usable: other tables, and dates outside the bad month.
    let ctx = local_session(&root).await;
    sql(&ctx, "SELECT count(*) FROM market").await;
    sql(
        &ctx,
        "SELECT sum(fee_bps) FROM lending WHERE date < '2021-06-01'",
    )
    .await;
}

#[tokio::test]
async fn truncated_parquet_file_is_named() {
    let (_dir, root) = broken_copy().await;
    let bad = root.join("market/month=2020-02/part-00000.parquet");
    let bytes = std::fs::read(&bad).expect("read");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = error_of(&root, "SELECT avg(close) FROM market").await;
    assert!(
        err.contains("market/month=2020-02/part-00000.parquet"),
        "{err}"
    );
}

#[tokio::test]
async fn file_missing_a_column_is_named() {
    let (_dir, root) = broken_copy().await;
    add_file_without_fee(&root);
    // Whether the query reads values or only counts them (which DataFusion could answer
    // from file statistics, where the missing column looks like NULLs).
    for query in [
        "SELECT sum(fee_bps) FROM lending",
        "SELECT count(fee_bps) FROM lending",
        "SELECT max(fee_bps) FROM lending",
    ] {
        let err = error_of(&root, query).await;
        assert!(
            err.contains("lending/month=2022-01/part-00000.parquet"),
            "{query}: {err}"
        );
        assert!(err.contains("missing column `fee_bps`"), "{query}: {err}");
    }
}

/// A lending file for a new month without `fee_bps` (and so without most columns).
fn add_file_without_fee(root: &std::path::Path) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("date", DataType::Date32, false),
        Field::new("security_id", DataType::Utf8, false),
        Field::new("on_loan_qty", DataType::Float64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(vec![18_993])),
        Arc::new(StringArray::from(vec!["LF000001"])),
        Arc::new(Float64Array::from(vec![1.0])),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).expect("batch");
    let dir = root.join("lending/month=2022-01");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = std::fs::File::create(dir.join("part-00000.parquet")).expect("create");
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

/// On a cluster the file is read by a worker; the client still names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_file_is_named_on_a_cluster_too() {
    let (_dir, root) = broken_copy().await;
    add_file_without_fee(&root);
    let config = lendfusion_core::LendfusionConfig {
        data: Some(root.display().to_string()),
        ..Default::default()
    };
    let cluster = lendfusion_coordinator::EmbeddedCluster::start(&config, 1)
        .await
        .expect("cluster");
    let client = cluster.client().await.expect("client");
    // A missing non-nullable column, and a missing nullable one (`dcbs`), which the worker
    // would otherwise read as NULLs.
    for query in [
        "SELECT sum(fee_bps) FROM lending",
        "SELECT count(dcbs) FROM lending",
    ] {
        let err = lendfusion_core::query::collect_sql(&client, query)
            .await
            .expect_err("a bad file");
        let text = err.to_string();
        assert!(
            text.contains("lending/month=2022-01/part-00000.parquet"),
            "{query}: {text}"
        );
    }
}

#[tokio::test]
async fn missing_root_and_bad_sql_are_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = lendfusion_core::LendfusionConfig {
        data: Some(dir.path().join("nothing-here").display().to_string()),
        ..Default::default()
    };
    let err = crate::support::session_error(&config).await;
    assert!(err.to_string().contains("no lendfusion tables"), "{err}");

    let (root, _) = small_panel().await;
    let ctx = local_session(root).await;
    let err = lendfusion_core::query::collect_sql(&ctx, "SELECT * FROM no_such_table")
        .await
        .expect_err("unknown table");
    assert!(err.to_string().contains("no_such_table"), "{err}");
    let err = lendfusion_core::query::collect_sql(&ctx, "SELEC 1")
        .await
        .expect_err("bad sql");
    assert!(err.to_string().to_lowercase().contains("sql"), "{err}");
}
