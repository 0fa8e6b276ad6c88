//! Every SPEC function, view and built-in factor against independent Python implementations on
//! generated data with its gaps (and more NULL, NaN, zero and negative values punched in), on
//! four paths: embedded, `lendfusion sql --data`, an embedded cluster and worker processes; and
//! the generator's planted squeezes recovered by `squeeze_event`.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;

use std::time::Duration;

use crate::support::cluster::{ProcessCluster, lendfusion_bin};
use crate::support::python::run_script;
use crate::support::{generate_local, local_session, options, sql};

/// A deterministic hash of (date, security) to punch holes into inputs.
const H: &str =
    "(CAST(date_part('doy', l.date) AS BIGINT) * 7 + CAST(substr(l.security_id, 3) AS BIGINT))";

fn inputs_sql() -> String {
    format!(
        "SELECT l.date, l.security_id,
           l.on_loan_qty, l.on_loan_value, l.active_lendable_value, l.borrowed_qty, l.stable_on_loan_qty,
           l.stable_lendable_qty, l.rerated_value, l.vwaf_bps, m.shares_outstanding, m.float_shares, m.close,
           ln(m.market_cap) AS ln_cap, m.book_to_market AS btm,
           CASE WHEN {H} % 53 = 2 THEN 0 WHEN {H} % 53 = 3 THEN -l.lendable_qty ELSE l.lendable_qty END AS lendable_qty,
           CASE WHEN {H} % 41 = 0 THEN NULL WHEN {H} % 41 = 1 THEN 'NaN'::double WHEN {H} % 41 = 2 THEN -5 ELSE l.fee_bps END AS fee_bps,
           CASE WHEN {H} % 211 = 0 THEN NULL WHEN {H} % 211 = 1 THEN 'NaN'::double WHEN {H} % 211 = 2 THEN 'inf'::double ELSE m.total_return END AS ret,
           CASE WHEN {H} % 197 = 0 THEN NULL WHEN {H} % 197 = 1 THEN 'NaN'::double ELSE l.on_loan_qty END AS q,
           AVG(valid_value(m.volume)) OVER (PARTITION BY l.security_id ORDER BY l.date ROWS BETWEEN 29 PRECEDING AND CURRENT ROW) AS adv30,
           LAG(l.vwaf_bps) OVER (PARTITION BY l.security_id ORDER BY l.date) AS vwaf_prev,
           AVG(valid_value(m.total_return)) OVER (PARTITION BY l.date) AS mkt
         FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id"
    )
}

fn results_sql() -> String {
    format!(
        "WITH i AS ({inputs}),
         j AS (SELECT *, short_interest(on_loan_qty, shares_outstanding) AS si, ret * 10 AS ret10 FROM i)
         SELECT *,
           short_interest(on_loan_qty, shares_outstanding) AS short_interest,
           utilization(on_loan_qty, lendable_qty) AS utilization,
           active_utilization(on_loan_value, active_lendable_value) AS active_utilization,
           demand_supply_ratio(borrowed_qty, lendable_qty) AS demand_supply_ratio,
           lending_supply(lendable_qty, shares_outstanding) AS lending_supply,
           short_interest_float(on_loan_qty, float_shares) AS short_interest_float,
           days_to_cover(on_loan_qty, adv30) AS days_to_cover,
           on_loan_stability(stable_on_loan_qty, on_loan_qty) AS on_loan_stability,
           lendable_stability(stable_lendable_qty, lendable_qty) AS lendable_stability,
           rerate_pct(rerated_value, on_loan_value) AS rerate_pct,
           rerate_direction(vwaf_bps, vwaf_prev) AS rerate_direction,
           dcbs(fee_bps) AS dcbs,
           dcbs(fee_bps, [10, 20, 40, 80, 160, 320, 640, 1280, 2560]) AS dcbs_custom,
           is_htb(fee_bps) AS is_htb,
           is_htb(fee_bps, 60) AS is_htb_60,
           market_regime(ret10) AS regime,
           market_regime(ret10, 0.05) AS regime_05,
           fwd_return(ret, 5) OVER w AS fwd5,
           fwd_return(ret, 21) OVER w AS fwd21,
           past_return(ret, 10) OVER w AS past_10,
           past_return(ret, 20, 5) OVER w AS past_20_5,
           ts_zscore(fee_bps, 30) OVER w AS z_fee_30,
           si_surprise(si, 60) OVER w AS sis_60,
           ts_beta(ret, mkt, 60) OVER w AS beta_60,
           short_cohort_otm(q, close) OVER w AS otm,
           short_cohort_pnl(q, close) OVER w AS pnl,
           short_cohort_near_breakeven(q, close) OVER w AS near,
           short_cohort_near_breakeven(q, close, 0.1) OVER w AS near_10,
           squeeze_event(ret, q) OVER w AS squeeze,
           cs_rank(fee_bps) OVER c AS cs_rank_fee,
           cs_zscore(fee_bps) OVER c AS cs_zscore_fee,
           cs_demean(fee_bps) OVER c AS cs_demean_fee,
           cs_normal_rank(fee_bps) OVER c AS cs_normal_fee,
           cs_bucket(fee_bps, 10) OVER c AS cs_bucket_fee,
           cs_bucket(dcbs(fee_bps), 4) OVER c AS cs_bucket_dcbs,
           cs_winsorize(ret, 0.05) OVER c AS cs_winsor_ret,
           cs_rank(ret) OVER (PARTITION BY date, substr(security_id, 8, 1)) AS cs_rank_ret_grouped,
           fm_residual(si, ln_cap, btm) OVER c AS fm_resid_2,
           fm_residual(ret, fee_bps, si, ln_cap, btm) OVER c AS fm_resid_4
         FROM j WINDOW w AS (PARTITION BY security_id ORDER BY date), c AS (PARTITION BY date)",
        inputs = inputs_sql()
    )
}

/// Aggregates of the same inputs by date (`fm_coefficients` cut into scalars, so that every
/// output format carries it).
fn by_date_sql() -> String {
    format!(
        "WITH i AS ({inputs}),
         j AS (SELECT *, short_interest(on_loan_qty, shares_outstanding) AS si,
                 fwd_return(ret, 21) OVER (PARTITION BY security_id ORDER BY date) AS fwd21 FROM i)
         SELECT date, ic_fee, c[1] AS fm_b0, c[2] AS fm_b1, c[3] AS fm_b2
         FROM (SELECT date, spearman_ic(fee_bps, fwd21) AS ic_fee, fm_coefficients(ret, fee_bps, si) AS c
               FROM j GROUP BY date)",
        inputs = inputs_sql()
    )
}

/// Aggregates of the same inputs by security.
fn by_security_sql() -> String {
    format!(
        "WITH i AS ({inputs})
         SELECT security_id,
           ann_return(ret ORDER BY date) AS ann_return, ann_vol(ret) AS ann_vol, sharpe_ratio(ret) AS sharpe,
           information_ratio(ret ORDER BY date) AS ir, max_drawdown(ret ORDER BY date) AS mdd, hit_rate(ret) AS hit,
           nw_tstat(ret ORDER BY date) AS nw, nw_tstat(ret, 3 ORDER BY date) AS nw_3, ann_return(ret, 12) AS ann_return_12
         FROM i GROUP BY security_id",
        inputs = inputs_sql()
    )
}

/// The `squeeze_inputs` view with the scores' inputs and the three scores.
const SQUEEZE_SQL: &str = "WITH s AS (
       SELECT s.*, l.on_loan_value AS short_value, l.fee_bps, l.on_loan_qty,
              days_to_cover(l.on_loan_qty, AVG(valid_value(m.volume)) OVER w30) AS dtc,
              short_interest_float(l.on_loan_qty, m.float_shares) AS sif,
              l.fee_bps - LAG(l.fee_bps, 5) OVER w AS fee_change,
              short_cohort_pnl(l.on_loan_qty, m.close) OVER w AS pnl,
              m.close
       FROM squeeze_inputs s
       JOIN lending l ON l.date = s.date AND l.security_id = s.security_id
       JOIN market m ON m.date = s.date AND m.security_id = s.security_id
       WINDOW w AS (PARTITION BY s.security_id ORDER BY s.date),
              w30 AS (PARTITION BY s.security_id ORDER BY s.date ROWS BETWEEN 29 PRECEDING AND CURRENT ROW)
     ), p AS (
       SELECT *, pnl - LAG(pnl, 5) OVER w AS pnl5, pnl - LAG(pnl, 20) OVER w AS pnl20, pnl - LAG(pnl, 60) OVER w AS pnl60,
              crowded_score(short_value, fee_bps, dtc, sif) OVER (PARTITION BY date) AS crowded_score
       FROM s WINDOW w AS (PARTITION BY security_id ORDER BY date)
     )
     SELECT *,
       squeeze_score(otm, otm_max20, near_breakeven, news, earnings, abnormal_volume) OVER d AS squeeze_score,
       squeeze_risk_score(crowded_score, fee_change, pnl5, pnl20, pnl60) OVER d AS squeeze_risk_score
     FROM p WINDOW d AS (PARTITION BY date)";

/// The `FactorPanel` SQL of every built-in factor over the whole panel.
fn factors_sql() -> String {
    let request = lendfusion_core::factors::PanelRequest {
        factors: lendfusion_core::factors::builtin_factors()
            .iter()
            .map(|f| lendfusion_core::factors::PanelFactor {
                expression: f.name.to_string(),
                name: String::new(),
            })
            .collect(),
        ..Default::default()
    };
    lendfusion_core::factors::panel_sql(&request).expect("panel sql")
}

/// Every cross-checked query, by the file name its result is written to.
fn crosscheck_queries() -> Vec<(&'static str, String)> {
    vec![
        ("functions", results_sql()),
        ("by_date", by_date_sql()),
        ("by_security", by_security_sql()),
        ("squeeze", SQUEEZE_SQL.to_string()),
        ("factors", factors_sql()),
    ]
}

/// Every SPEC function, the `squeeze_inputs` view, the three scores and every built-in factor
/// against the independent Python references (tests/python/crosscheck_*.py) on a generated
/// panel with its realistic gaps (NULL, NaN, ±inf, zero and negative denominators, halts,
/// missing rows) plus holes the query punches in. The same SQL runs through four paths — an
/// embedded session, `lendfusion sql --data` (its CSV parsed exactly: floats print
/// round-trip), an embedded cluster with two workers and a coordinator with two worker
/// processes — and every path's result is checked against the reference: ranks, buckets,
/// integer scores and Booleans exactly (NULL positions too), other values to 1e-9.
#[test]
fn every_function_view_and_factor_agrees_with_python_on_every_path() {
    // The embedded cluster plans, serializes and decodes these deep plans (the squeeze view
    // under three layers of windows) on this runtime's threads: 2 MiB stacks overflow, so they
    // get the 16 MiB the `lendfusion` binary gives its runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(runtime.spawn(cross_check_every_path()))
        .expect("cross-check task");
}

async fn cross_check_every_path() {
    let temp = tempfile::tempdir().expect("tempdir");
    // LENDFUSION_KEEP_CROSSCHECK=1 keeps the panel and every path's results, to debug a reference.
    let (_temp, dir) = if std::env::var_os("LENDFUSION_KEEP_CROSSCHECK").is_some() {
        let kept = temp.keep();
        eprintln!("cross-check files in {}", kept.display());
        (None, kept)
    } else {
        let path = temp.path().to_path_buf();
        (Some(temp), path)
    };
    let root = dir.join("panel");
    let summary = generate_local(&options(&root, 40, "2019-01-01", "2020-06-30", 21)).await;
    let gaps = &summary.truth.gap_counts;
    for kind in [
        "lending.on_loan_qty.nan",
        "lending.on_loan_qty.zero",
        "lending.fee_bps.inf",
        "market.close.negative",
        "market.total_return.nan",
        "market.volume.null",
        "events.sentiment.nan",
        "market.halt_rows",
    ] {
        assert!(
            gaps.get(kind).copied().unwrap_or(0) > 0,
            "no {kind}: {gaps:?}"
        );
    }
    let data = root.display().to_string();
    let queries = crosscheck_queries();
    let out = |path: &str| {
        let d = dir.join(path);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    };

    // 1. Embedded.
    let embedded = out("embedded");
    let ctx = local_session(&root).await;
    for (name, query) in &queries {
        let batches = sql(&ctx, query).await;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert!(rows >= 30, "{name}: {rows} rows");
        write_parquet(&embedded.join(format!("{name}.parquet")), &batches);
    }

    // 2. `lendfusion sql --data DIR --format csv`.
    let cli = out("cli");
    for (name, query) in &queries {
        let run = std::process::Command::new(lendfusion_bin())
            .args(["sql", "--data", &data, "--format", "csv", query])
            .env_remove("LENDFUSION_CONFIG")
            .env_remove("LENDFUSION_DATA")
            .output()
            .expect("run lendfusion sql");
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        std::fs::write(cli.join(format!("{name}.csv")), &run.stdout).expect("write csv");
    }

    // 3. An embedded cluster with two workers.
    let cluster_dir = out("cluster");
    let config = lendfusion_core::LendfusionConfig {
        data: Some(data.clone()),
        ..Default::default()
    };
    let cluster = lendfusion_coordinator::EmbeddedCluster::start(&config, 2)
        .await
        .expect("cluster");
    let client = cluster.client().await.expect("client");
    for (name, query) in &queries {
        let batches = sql(&client, query).await;
        write_parquet(&cluster_dir.join(format!("{name}.parquet")), &batches);
    }
    drop(client);
    drop(cluster);

    // 4. A coordinator and two worker processes, through the Flight SQL port.
    let processes_dir = out("processes");
    let processes = ProcessCluster::start(&data, 2, &[]);
    processes.wait_ready(Duration::from_secs(60)).await;
    for (name, query) in &queries {
        let batches = processes
            .query(query)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", processes.logs()));
        write_parquet(&processes_dir.join(format!("{name}.parquet")), &batches);
    }
    drop(processes);

    let mut args = vec![];
    for (path, d) in [
        ("embedded", &embedded),
        ("cli", &cli),
        ("cluster", &cluster_dir),
        ("processes", &processes_dir),
    ] {
        args.push("--path".to_string());
        args.push(format!("{path}={}", d.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = run_script("crosscheck_functions.py", &args);
    assert!(report.contains("outputs agree"), "{report}");
    println!("{report}");
    let mut squeeze_args = vec!["--panel", data.as_str()];
    squeeze_args.extend_from_slice(&args);
    let report = run_script("crosscheck_squeeze.py", &squeeze_args);
    assert!(report.contains("squeeze outputs agree"), "{report}");
    println!("{report}");
}

fn write_parquet(path: &std::path::Path, batches: &[arrow::record_batch::RecordBatch]) {
    assert!(!batches.is_empty(), "{}: no batches", path.display());
    let file = std::fs::File::create(path).expect("create");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), None).expect("writer");
    for b in batches {
        writer.write(b).expect("write");
    }
    writer.close().expect("close");
}

#[tokio::test]
async fn aggregates_give_the_same_answer_on_one_and_many_partitions() {
    let (root, _) = crate::support::small_panel().await;
    let query = "SELECT l.security_id, ann_return(m.total_return ORDER BY l.date) AS a, ann_vol(m.total_return) AS v,
                        max_drawdown(m.total_return ORDER BY l.date) AS d, nw_tstat(m.total_return ORDER BY l.date) AS t,
                        hit_rate(m.total_return) AS h, spearman_ic(l.fee_bps, m.total_return) AS ic,
                        fm_coefficients(m.total_return, l.fee_bps)[2] AS b
                 FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id
                 GROUP BY l.security_id ORDER BY l.security_id";
    let mut answers = vec![];
    for partitions in [1, 7] {
        let config = lendfusion_core::LendfusionConfig {
            data: Some(root.display().to_string()),
            execution: lendfusion_core::config::ExecutionSettings {
                target_partitions: partitions,
                batch_size: 512,
            },
            ..Default::default()
        };
        let ctx = lendfusion_core::session_context(&config)
            .await
            .expect("session");
        answers.push(sql(&ctx, query).await);
    }
    // Row by row, so that how the rows are cut into batches does not matter.
    let flat = |batches: &[arrow::record_batch::RecordBatch]| -> Vec<Option<f64>> {
        let mut out = vec![];
        for b in batches {
            let columns: Vec<_> = (1..b.num_columns())
                .map(|c| b.column(c).as_primitive::<arrow::datatypes::Float64Type>())
                .collect();
            for row in 0..b.num_rows() {
                out.extend(
                    columns
                        .iter()
                        .map(|col| col.is_valid(row).then(|| col.value(row))),
                );
            }
        }
        out
    };
    let (one, many) = (flat(&answers[0]), flat(&answers[1]));
    assert_eq!(one.len(), many.len());
    for (i, (a, b)) in one.iter().zip(&many).enumerate() {
        match (a, b) {
            (Some(a), Some(b)) => assert!(
                (a - b).abs() <= 1e-12 * a.abs().max(1.0),
                "value {i}: {a} vs {b}"
            ),
            (None, None) => {}
            _ => panic!("value {i}: {a:?} vs {b:?}"),
        }
    }
}

#[tokio::test]
async fn planted_squeezes_are_squeeze_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("panel");
    let summary = generate_local(&options(&root, 150, "2019-01-01", "2020-12-31", 5)).await;
    assert!(
        summary.truth.squeezes.len() >= 3,
        "too few planted squeezes to test: {}",
        summary.truth.squeezes.len()
    );
    let ctx = local_session(&root).await;
    let batches = sql(
        &ctx,
        "SELECT security_id, CAST(date AS VARCHAR) AS d FROM (
           SELECT l.security_id, l.date,
                  squeeze_event(m.total_return, l.on_loan_qty) OVER (PARTITION BY l.security_id ORDER BY l.date) AS s
           FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id)
         WHERE s",
    )
    .await;
    let mut found = std::collections::HashSet::new();
    for b in &batches {
        let ids = strings(b.column(0));
        let dates = strings(b.column(1));
        found.extend(ids.into_iter().zip(dates));
    }
    // The panel has gaps: a planted squeeze whose inputs a gap made invalid is NULL by SPEC's
    // definition (or its row is missing from the join); it must never be FALSE.
    let unseen: Vec<(String, String)> = summary
        .truth
        .squeezes
        .iter()
        .map(|p| (p.security_id.clone(), p.date.clone()))
        .filter(|p| !found.contains(p))
        .collect();
    if !unseen.is_empty() {
        let list = unseen
            .iter()
            .map(|(id, d)| format!("(security_id = '{id}' AND date = DATE '{d}')"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let falses = sql(
            &ctx,
            &format!(
                "SELECT security_id, CAST(date AS VARCHAR) FROM (
                   SELECT l.security_id, l.date,
                          squeeze_event(m.total_return, l.on_loan_qty) OVER (PARTITION BY l.security_id ORDER BY l.date) AS s
                   FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id)
                 WHERE ({list}) AND s = false"
            ),
        )
        .await;
        let falses: usize = falses.iter().map(|b| b.num_rows()).sum();
        assert_eq!(falses, 0, "planted squeezes not detected: {unseen:?}");
    }
    assert!(
        unseen.len() * 5 <= summary.truth.squeezes.len(),
        "{} of {} planted squeezes lost to gaps: {unseen:?}",
        unseen.len(),
        summary.truth.squeezes.len()
    );
    // Detection is not flooded by chance events either.
    assert!(
        found.len() <= 3 * summary.truth.squeezes.len() + 10,
        "{} events for {} planted",
        found.len(),
        summary.truth.squeezes.len()
    );
}

/// A string column of any string type as owned strings.
fn strings(column: &ArrayRef) -> Vec<String> {
    let utf8 = arrow::compute::cast(column, &DataType::Utf8).expect("cast to Utf8");
    let a = utf8.as_string::<i32>();
    (0..a.len()).map(|i| a.value(i).to_string()).collect()
}
