//! The generator writes exactly SPEC's tables, sorted and month-partitioned, deterministically.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Date32Type};
use lendfusion_core::schema::{TABLE_NAMES, date_column, table_schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::support::{files_below, generate_local, local_session, options, small_panel, sql};

fn read_file(path: &std::path::Path) -> Vec<arrow::record_batch::RecordBatch> {
    let file = std::fs::File::open(path).expect("open");
    ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader")
        .collect::<Result<Vec<_>, _>>()
        .expect("batches")
}

#[tokio::test]
async fn files_have_spec_schema_sorted_rows_and_month_partitions() {
    let (root, summary) = small_panel().await;
    for table in TABLE_NAMES {
        let files = files_below(&root.join(table));
        assert!(!files.is_empty(), "{table} has no files");
        assert_eq!(files.len(), summary.files[table], "{table}");
        let expected = table_schema(table).expect("schema");
        for rel in files {
            let month = rel.parent().and_then(|p| p.to_str()).expect("month dir");
            let month = month
                .strip_prefix("month=")
                .unwrap_or_else(|| panic!("{table}/{month} is not month=YYYY-MM"));
            assert_eq!(month.len(), 7, "{month}");
            let batches = read_file(&root.join(table).join(&rel));
            let mut previous: Option<(i32, String)> = None;
            for batch in &batches {
                // Names, types and nullability exactly as SPEC (metadata aside).
                let fields: Vec<(String, DataType, bool)> = batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
                    .collect();
                let want: Vec<(String, DataType, bool)> = expected
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
                    .collect();
                assert_eq!(fields, want, "{table}/{}", rel.display());
                let dates = batch
                    .column_by_name(date_column(table))
                    .expect("date")
                    .as_primitive::<Date32Type>();
                let ids = batch
                    .column_by_name("security_id")
                    .expect("id")
                    .as_string::<i32>();
                for row in 0..batch.num_rows() {
                    let date = dates.value(row);
                    let day =
                        chrono::NaiveDate::from_num_days_from_ce_opt(date + 719_163).expect("date");
                    assert_eq!(
                        day.format("%Y-%m").to_string(),
                        month,
                        "{table} row in the wrong month"
                    );
                    let key = (date, ids.value(row).to_string());
                    if let Some(prev) = &previous {
                        assert!(
                            prev <= &key,
                            "{table}/{}: rows not sorted by (date, security_id)",
                            rel.display()
                        );
                    }
                    previous = Some(key);
                }
                // Non-nullable columns carry no NULLs.
                for (i, field) in batch.schema().fields().iter().enumerate() {
                    if !field.is_nullable() {
                        assert_eq!(batch.column(i).null_count(), 0, "{table}.{}", field.name());
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn catalog_declares_spec_schemas() {
    let (root, _) = small_panel().await;
    let ctx = local_session(root).await;
    for table in TABLE_NAMES {
        let provider = ctx.table_provider(table).await.expect("table");
        assert_eq!(
            provider.schema(),
            table_schema(table).expect("schema"),
            "{table}"
        );
    }
    let batches = sql(
        &ctx,
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .await;
    let n = batches[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0);
    assert_eq!(n, 4);
    // The built-in view, with SPEC's columns.
    let view = ctx
        .table_provider("squeeze_inputs")
        .await
        .expect("squeeze_inputs");
    let columns: Vec<String> = view
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        columns,
        [
            "date",
            "security_id",
            "otm",
            "otm_max20",
            "near_breakeven",
            "news",
            "earnings",
            "abnormal_volume"
        ]
    );
    for flag in ["news", "earnings", "abnormal_volume"] {
        let field = view.schema().field_with_name(flag).expect("flag").clone();
        assert_eq!(
            field.data_type(),
            &arrow::datatypes::DataType::Boolean,
            "{flag}"
        );
    }
}

#[tokio::test]
async fn planted_truth_is_written_and_consistent() {
    let (root, summary) = small_panel().await;
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("_truth.json")).expect("truth"))
            .expect("json");
    assert_eq!(truth["seed"], 11);
    assert_eq!(truth["securities"], 120);
    for key in ["utilization", "short_interest", "days_to_cover", "fee_bps"] {
        assert!(
            truth["target_ic_21d"][key].as_f64().expect("target") < 0.0,
            "{key}"
        );
    }
    assert_eq!(
        truth["squeezes"].as_array().expect("squeezes").len(),
        summary.truth.squeezes.len()
    );
    assert_eq!(
        truth["rows"]["lending"].as_u64(),
        Some(summary.rows["lending"])
    );
    // Lending invariants the SPEC promises: DSR >= utilization, an HTB tail, regions, universes
    // — among valid values (the panel has gaps: NaN, infinite, zero and negative cells).
    let ctx = local_session(root).await;
    let batches = sql(
        &ctx,
        "WITH v AS (
           SELECT valid_value(borrowed_qty) AS borrowed, CASE WHEN valid_value(on_loan_qty) > 0 THEN on_loan_qty END AS on_loan,
                  CASE WHEN valid_value(lendable_qty) > 0 THEN lendable_qty END AS lendable,
                  valid_value(fee_bps) AS fee, valid_value(rebate_bps) AS rebate,
                  stable_on_loan_qty, stable_lendable_qty, m.region
           FROM lending l JOIN market m USING (date, security_id))
         SELECT
           sum(CASE WHEN borrowed < on_loan THEN 1 ELSE 0 END) AS dsr_below_util,
           sum(CASE WHEN on_loan > lendable THEN 1 ELSE 0 END) AS over_lent,
           avg(CASE WHEN fee > 120 THEN 1.0 ELSE 0.0 END) AS htb_share,
           sum(CASE WHEN stable_on_loan_qty > on_loan OR stable_lendable_qty > lendable THEN 1 ELSE 0 END) AS bad_stable,
           count(DISTINCT region) AS regions,
           sum(CASE WHEN rebate < 0 THEN 1 ELSE 0 END) AS negative_rebates
         FROM v",
    )
    .await;
    let b = &batches[0];
    let int = |name: &str| {
        b.column_by_name(name)
            .expect(name)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0)
    };
    assert_eq!(int("dsr_below_util"), 0);
    assert_eq!(int("over_lent"), 0);
    assert_eq!(int("bad_stable"), 0);
    assert_eq!(int("regions"), 4);
    assert!(
        int("negative_rebates") > 0,
        "specials should have negative rebates"
    );
    let htb = b
        .column_by_name("htb_share")
        .expect("htb")
        .as_primitive::<arrow::datatypes::Float64Type>()
        .value(0);
    assert!((0.01..0.25).contains(&htb), "hard-to-borrow share {htb}");
    let batches = sql(
        &ctx,
        "SELECT DISTINCT universe FROM universe ORDER BY universe",
    )
    .await;
    let names: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|s| s.expect("name").to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(names, ["APAC_DEV", "EM", "EU_DEV", "US_LARGE", "US_SMALL"]);
}

#[tokio::test]
async fn same_seed_same_bytes_different_seed_different_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let c = dir.path().join("c");
    generate_local(&options(&a, 40, "2021-01-01", "2021-03-31", 5)).await;
    generate_local(&options(&b, 40, "2021-01-01", "2021-03-31", 5)).await;
    generate_local(&options(&c, 40, "2021-01-01", "2021-03-31", 6)).await;
    let files = files_below(&a);
    assert_eq!(files, files_below(&b));
    for rel in &files {
        assert!(
            std::fs::read(a.join(rel)).expect("a") == std::fs::read(b.join(rel)).expect("b"),
            "{} differs between two runs with the same seed",
            rel.display()
        );
    }
    let lending = |root: &std::path::Path| {
        std::fs::read(root.join("lending/month=2021-02/part-00000.parquet")).expect("file")
    };
    assert_ne!(
        lending(&a),
        lending(&c),
        "a different seed must give different data"
    );
}

#[tokio::test]
async fn existing_panel_is_not_overwritten_without_asking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("p");
    generate_local(&options(&root, 10, "2021-01-01", "2021-01-31", 1)).await;
    let mut again = options(&root, 10, "2021-01-01", "2021-01-31", 2);
    let err = lendfusion_datagen::generate(&again, &Default::default(), None)
        .await
        .expect_err("must refuse");
    assert!(err.to_string().contains("--overwrite"), "{err}");
    again.overwrite = true;
    lendfusion_datagen::generate(&again, &Default::default(), None)
        .await
        .expect("overwrite");
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("_truth.json")).expect("truth"))
            .expect("json");
    assert_eq!(truth["seed"], 2);
    let _ = Arc::new(());
}
