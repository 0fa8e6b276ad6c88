//! Gaps in the data (SPEC §2: "gaps are normal"): NULL measures are read and counted, not
//! rejected or assumed away; a NULL key is an error naming the file; NaN and infinities never
//! satisfy a condition in the views and built-in factors. Embedded and on an embedded cluster.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Array, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::execution::context::SessionContext;

use crate::support::{copy_tree, local_session, small_panel, sql};

/// The one Int64 value of a `SELECT count(*)`-style query.
async fn count(ctx: &SessionContext, query: &str) -> i64 {
    let batches = sql(ctx, query).await;
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

/// A predicate selecting one gap kind of a column.
fn kind_predicate(column: &str, kind: &str) -> Option<String> {
    Some(match kind {
        "null" => format!("{column} IS NULL"),
        "nan" => format!("isnan({column})"),
        "inf" => format!("abs({column}) = 'inf'::double"),
        _ => return None,
    })
}

/// Every NULL, NaN and infinity the generator planted is seen by a query, exactly as counted in
/// `_truth.json` — embedded and on a cluster. Before nullable measure columns, a file with a
/// NULL failed every query reading the column, and `IS NULL` was folded to false by the planner.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn planted_gaps_are_seen_exactly_embedded_and_on_a_cluster() {
    let (root, summary) = small_panel().await;
    let counts = &summary.truth.gap_counts;
    assert!(
        counts.get("lending.fee_bps.null").copied().unwrap_or(0) > 0,
        "the default panel must have gaps: {counts:?}"
    );
    let embedded = local_session(root).await;
    let config = lendfusion_core::LendfusionConfig {
        data: Some(root.display().to_string()),
        ..Default::default()
    };
    let cluster = lendfusion_coordinator::EmbeddedCluster::start(&config, 2)
        .await
        .expect("cluster");
    let client = cluster.client().await.expect("client");
    let mut checked = 0;
    for (key, expected) in counts {
        let parts: Vec<&str> = key.split('.').collect();
        let [table, column, kind] = parts.as_slice() else {
            continue;
        };
        let Some(predicate) = kind_predicate(column, kind) else {
            continue;
        };
        let query = format!("SELECT count(*) FROM {table} WHERE {predicate}");
        // Labels are never NaN; `isnan` needs a number.
        if *kind != "null" && ["country", "region", "sector", "category"].contains(column) {
            continue;
        }
        // `dcbs` is also NULL where the vendor does not score a name.
        if *column == "dcbs" {
            continue;
        }
        for (path, ctx) in [("embedded", &embedded), ("cluster", &client)] {
            let got = count(ctx, &query).await;
            assert_eq!(got, *expected as i64, "{path}: {query}");
        }
        checked += 1;
    }
    assert!(
        checked >= 30,
        "only {checked} gap kinds checked: {counts:?}"
    );
    // Rows: the dropped rows are really absent, and nothing else is.
    for table in ["lending", "market"] {
        let rows = count(&client, &format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(rows as u64, summary.truth.rows[table], "{table}");
    }
    // Names absent from the lending feed have market rows and no lending rows.
    let absent = count(
        &embedded,
        "SELECT count(DISTINCT security_id) FROM market \
         WHERE security_id NOT IN (SELECT DISTINCT security_id FROM lending)",
    )
    .await;
    assert_eq!(absent as u64, counts["lending.absent_securities"]);
    // Halts: zero volume and zero return.
    let halts = count(
        &embedded,
        "SELECT count(*) FROM market WHERE volume = 0 AND total_return = 0",
    )
    .await;
    assert!(halts as u64 >= counts["market.halt_rows"] / 2, "{halts}");
}

/// A file written by someone else (not our generator) with NULL measures is read, and its NULLs
/// are counted.
#[tokio::test]
async fn a_foreign_file_with_null_measures_is_read() {
    let (root, _) = small_panel().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("panel");
    copy_tree(root, &copy);
    write_lending_file(
        &copy,
        "2022-02",
        Some("LF000001"),
        &[Some(1.0), None, Some(f64::NAN)],
    );
    let ctx = local_session(&copy).await;
    let month = "date >= DATE '2022-02-01'";
    assert_eq!(
        count(
            &ctx,
            &format!("SELECT count(*) FROM lending WHERE {month} AND fee_bps IS NULL")
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &ctx,
            &format!("SELECT count(fee_bps) FROM lending WHERE {month}")
        )
        .await,
        2
    );
    // Functions treat NULL and NaN alike: invalid.
    assert_eq!(
        count(
            &ctx,
            &format!("SELECT count(is_htb(fee_bps)) FROM lending WHERE {month}")
        )
        .await,
        1
    );
}

/// A NULL key is an error that names the file, embedded and on a cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_null_key_is_an_error_naming_the_file() {
    let (root, _) = small_panel().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("panel");
    copy_tree(root, &copy);
    write_lending_file(&copy, "2022-03", None, &[Some(1.0), Some(2.0), Some(3.0)]);
    let ctx = local_session(&copy).await;
    let config = lendfusion_core::LendfusionConfig {
        data: Some(copy.display().to_string()),
        ..Default::default()
    };
    let cluster = lendfusion_coordinator::EmbeddedCluster::start(&config, 1)
        .await
        .expect("cluster");
    let client = cluster.client().await.expect("client");
    for (path, ctx) in [("embedded", &ctx), ("cluster", &client)] {
        // Queries that read the key. (One that does not, `count(*) ... WHERE security_id IS
        // NULL`, is answered from the declaration: keys are never NULL.)
        for query in [
            "SELECT count(DISTINCT security_id) FROM lending",
            "SELECT security_id, sum(fee_bps) FROM lending WHERE date >= DATE '2022-01-01' GROUP BY security_id",
        ] {
            match lendfusion_core::query::collect_sql(ctx, query).await {
                Ok(batches) => panic!(
                    "{path}: {query} should fail on a NULL key, got {}",
                    crate::support::render(&batches)
                ),
                Err(e) => {
                    let text = e.to_string();
                    assert!(
                        text.contains("lending/month=2022-03/part-00000.parquet"),
                        "{path}: {query}: {text}"
                    );
                    assert!(text.contains("security_id"), "{path}: {query}: {text}");
                }
            }
        }
    }
}

/// A lending file for one month with three rows of LF-ids (or NULL ids) and the given fees;
/// every other column is a constant, declared nullable as another producer would.
fn write_lending_file(root: &std::path::Path, month: &str, id: Option<&str>, fees: &[Option<f64>]) {
    let table = lendfusion_core::schema::lending_schema();
    let day = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").expect("month")
        - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let n = fees.len();
    let mut fields = vec![];
    let mut columns: Vec<ArrayRef> = vec![];
    for field in table.fields() {
        fields.push(Field::new(field.name(), field.data_type().clone(), true));
        columns.push(match field.name().as_str() {
            "date" => Arc::new(Date32Array::from(vec![day.num_days() as i32; n])),
            "security_id" => Arc::new(StringArray::from(
                (0..n)
                    .map(|i| id.map(|id| format!("{id}{i}")))
                    .collect::<Vec<_>>(),
            )),
            "fee_bps" => Arc::new(Float64Array::from(fees.to_vec())),
            _ if *field.data_type() == DataType::Float64 => {
                Arc::new(Float64Array::from(vec![100.0; n]))
            }
            _ => arrow::array::new_null_array(field.data_type(), n),
        });
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch");
    let dir = root.join(format!("lending/month={month}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = std::fs::File::create(dir.join("part-00000.parquet")).expect("create");
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

/// SPEC §1: NaN and ±inf never satisfy a condition. A NaN return on a high-volume day is not
/// an up day (`abnormal_volume` false: Arrow's total order puts NaN above 0), and a news item
/// with NaN sentiment or infinite relevance is not relevant positive news.
#[tokio::test]
async fn invalid_values_never_satisfy_a_condition_in_the_views() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("panel");
    crate::support::generate_local(&crate::support::options(
        &root,
        20,
        "2020-01-01",
        "2020-03-31",
        5,
    ))
    .await;
    let ctx = local_session(&root).await;
    // Views over hand-made rows: the same query text the catalog uses, on memory tables.
    let days = 25;
    let d0 = 18_300; // 2020-02-08 or so; only the order matters
    let volume: Vec<f64> = (0..days)
        .map(|i| if i == days - 1 { 1e9 } else { 100.0 })
        .collect();
    let mut cases = vec![];
    for (id, last_return) in [("UP", 0.01), ("NAN", f64::NAN), ("INF", f64::INFINITY)] {
        for i in 0..days {
            cases.push((
                id,
                d0 + i,
                volume[i as usize],
                if i == days - 1 { last_return } else { 0.0 },
            ));
        }
    }
    let n = cases.len();
    // Every Float64 column a constant, the keys from the cases, other columns NULL; `column`
    // overrides a Float64 column by name.
    let batch = |schema: arrow::datatypes::SchemaRef,
                 constant: f64,
                 column: &dyn Fn(&str) -> Option<Vec<f64>>| {
        let columns = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.name().as_str() {
                    "date" => Arc::new(Date32Array::from_iter_values(cases.iter().map(|c| c.1))),
                    "security_id" => {
                        Arc::new(StringArray::from_iter_values(cases.iter().map(|c| c.0)))
                    }
                    name if *f.data_type() == DataType::Float64 => Arc::new(Float64Array::from(
                        column(name).unwrap_or_else(|| vec![constant; n]),
                    )),
                    _ => arrow::array::new_null_array(f.data_type(), n),
                }
            })
            .collect();
        RecordBatch::try_new(schema, columns).expect("batch")
    };
    let lending = batch(lendfusion_core::schema::lending_schema(), 100.0, &|_| None);
    let market = batch(
        lendfusion_core::schema::market_schema(),
        10.0,
        &|name| match name {
            "volume" => Some(cases.iter().map(|c| c.2).collect()),
            "total_return" => Some(cases.iter().map(|c| c.3).collect()),
            _ => None,
        },
    );
    let news_day = d0 + days - 1;
    let events = RecordBatch::try_new(
        lendfusion_core::schema::events_schema(),
        vec![
            Arc::new(Date32Array::from(vec![news_day; 3])),
            Arc::new(StringArray::from(vec!["UP", "NAN", "INF"])),
            Arc::new(StringArray::from(vec!["news"; 3])),
            Arc::new(StringArray::from(vec!["other"; 3])),
            Arc::new(Float64Array::from(vec![0.9, f64::NAN, 0.9])),
            Arc::new(Float64Array::from(vec![95.0, 95.0, f64::INFINITY])),
        ],
    )
    .expect("events");
    let local = SessionContext::new_with_state(ctx.state());
    for (name, batch) in [("lending", lending), ("market", market), ("events", events)] {
        local.deregister_table(name).expect("deregister");
        local.register_batch(name, batch).expect("register");
    }
    local
        .deregister_table("squeeze_inputs")
        .expect("deregister");
    lendfusion_core::views::register_views(&local)
        .await
        .expect("views");
    let batches = sql(
        &local,
        &format!(
            "SELECT security_id, news, abnormal_volume FROM squeeze_inputs \
             WHERE date = CAST({news_day} AS DATE) ORDER BY security_id"
        ),
    )
    .await;
    let shown = crate::support::render(&batches);
    let batch = &batches[0];
    let ids = batch.column(0).as_string::<i32>();
    let news = batch.column(1).as_boolean();
    let abnormal = batch.column(2).as_boolean();
    for i in 0..batch.num_rows() {
        let valid = ids.value(i) == "UP";
        assert_eq!(news.value(i), valid, "news of {}:\n{shown}", ids.value(i));
        assert_eq!(
            abnormal.value(i),
            valid,
            "abnormal_volume of {}:\n{shown}",
            ids.value(i)
        );
        assert!(!news.is_null(i) && !abnormal.is_null(i), "{shown}");
    }
    assert_eq!(batch.num_rows(), 3, "{shown}");
}
