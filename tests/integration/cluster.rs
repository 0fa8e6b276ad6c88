//! The cluster: every SPEC function gives the same answer embedded, on an embedded cluster and
//! on separate coordinator and worker processes reading from a real S3 server; a worker killed
//! mid-query changes nothing in the answer; late, lost and missing workers behave.

use std::time::Duration;

use arrow::record_batch::RecordBatch;
use datafusion::execution::context::SessionContext;
use lendfusion_coordinator::EmbeddedCluster;
use lendfusion_core::LendfusionConfig;
use lendfusion_core::cluster::cluster_client_context;
use lendfusion_datagen::generate;

use crate::support::cluster::{ProcessCluster, assert_same_results};
use crate::support::garage::{BUCKET, Garage, KEY_ID, REGION, SECRET};
use crate::support::{generate_local, local_session, options, render, small_panel, sql};

/// Every lendfusion function of SPEC §3, over the generated tables, each result in a total
/// order. The squeeze view exercises the cohort functions through `squeeze_inputs`.
pub const FUNCTION_SUITE: [(&str, &str); 7] = [
    (
        "lending factors",
        "SELECT l.date, l.security_id,
           utilization(l.on_loan_qty, l.lendable_qty) AS util,
           active_utilization(l.on_loan_value, l.active_lendable_value) AS active_util,
           demand_supply_ratio(l.borrowed_qty, l.lendable_qty) AS dsr,
           lending_supply(l.lendable_qty, m.shares_outstanding) AS supply,
           short_interest(l.on_loan_qty, m.shares_outstanding) AS si,
           short_interest_float(l.on_loan_qty, m.float_shares) AS sif,
           days_to_cover(l.on_loan_qty, m.volume) AS dtc,
           on_loan_stability(l.stable_on_loan_qty, l.on_loan_qty) AS ols,
           lendable_stability(l.stable_lendable_qty, l.lendable_qty) AS ls,
           valid_value(l.fee_bps) AS fee_valid,
           rerate_pct(l.rerated_value, l.on_loan_value) AS rerate,
           rerate_direction(l.vwaf_bps, lag(l.vwaf_bps) OVER (PARTITION BY l.security_id ORDER BY l.date)) AS hotter,
           dcbs(l.fee_bps) AS dcbs, dcbs(l.fee_bps, [10, 20, 40, 80, 160, 320, 640, 1280, 2560]) AS dcbs_custom,
           is_htb(l.fee_bps) AS htb, is_htb(l.fee_bps, 300) AS htb300,
           market_regime(m.total_return * 20) AS regime, market_regime(m.total_return * 20, 0.3) AS regime_wide
         FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id
         ORDER BY l.date, l.security_id",
    ),
    (
        "time series",
        "WITH j AS (
           SELECT l.date, l.security_id, l.on_loan_qty, m.close, m.total_return,
                  short_interest(l.on_loan_qty, m.shares_outstanding) AS si,
                  avg(m.total_return) OVER (PARTITION BY l.date) AS mkt
           FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id)
         SELECT date, security_id,
           fwd_return(total_return, 21) OVER w AS fwd21,
           past_return(total_return, 60, 5) OVER w AS mom,
           ts_zscore(si, 40) OVER w AS z,
           si_surprise(si, 60) OVER w AS sis, si_surprise(si) OVER w AS sis_default,
           ts_beta(total_return, mkt, 60) OVER w AS beta,
           short_cohort_otm(on_loan_qty, close) OVER w AS otm,
           short_cohort_pnl(on_loan_qty, close) OVER w AS pnl,
           short_cohort_near_breakeven(on_loan_qty, close) OVER w AS near,
           short_cohort_near_breakeven(on_loan_qty, close, 0.1) OVER w AS near10,
           squeeze_event(total_return, on_loan_qty) OVER w AS squeeze
         FROM j WINDOW w AS (PARTITION BY security_id ORDER BY date)
         ORDER BY date, security_id",
    ),
    (
        "cross section",
        "WITH j AS (
           SELECT l.date, l.security_id, m.sector,
                  utilization(l.on_loan_qty, l.lendable_qty) AS util,
                  short_interest(l.on_loan_qty, m.shares_outstanding) AS si,
                  ln(m.market_cap) AS size, m.book_to_market AS btm, l.fee_bps
           FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id)
         SELECT date, security_id,
           cs_rank(util) OVER d AS r, cs_zscore(util) OVER d AS z, cs_demean(util) OVER d AS dm,
           cs_normal_rank(fee_bps) OVER d AS nr, cs_bucket(util, 10) OVER d AS b,
           cs_winsorize(fee_bps, 0.05) OVER d AS w,
           cs_rank(util) OVER (PARTITION BY date, sector) AS r_sector,
           fm_residual(si, size, btm) OVER d AS resid
         FROM j WINDOW d AS (PARTITION BY date)
         ORDER BY date, security_id",
    ),
    (
        "fama-macbeth and IC per date",
        "WITH j AS (
           SELECT l.date, short_interest(l.on_loan_qty, m.shares_outstanding) AS si,
                  ln(m.market_cap) AS size, m.book_to_market AS btm,
                  utilization(l.on_loan_qty, l.lendable_qty) AS util,
                  fwd_return(m.total_return, 5) OVER (PARTITION BY l.security_id ORDER BY l.date) AS fwd5
           FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id)
         SELECT date, fm_coefficients(si, size, btm) AS coef, spearman_ic(util, fwd5) AS ic
         FROM j GROUP BY date ORDER BY date",
    ),
    (
        "evaluation aggregates",
        "SELECT security_id,
           ann_return(total_return ORDER BY date) AS ar, ann_return(total_return, 12 ORDER BY date) AS ar12,
           ann_vol(total_return) AS av, sharpe_ratio(total_return) AS sr,
           information_ratio(total_return ORDER BY date) AS ir,
           max_drawdown(total_return ORDER BY date) AS mdd, hit_rate(total_return) AS hr,
           nw_tstat(total_return ORDER BY date) AS nw, nw_tstat(total_return, 3 ORDER BY date) AS nw3
         FROM market GROUP BY security_id ORDER BY security_id",
    ),
    (
        "squeeze and crowding scores",
        "WITH s AS (SELECT * FROM squeeze_inputs),
         c AS (
           SELECT l.date, l.security_id, l.on_loan_value AS sv, l.fee_bps,
                  days_to_cover(l.on_loan_qty, m.volume) AS dtc,
                  short_interest_float(l.on_loan_qty, m.float_shares) AS sif,
                  l.fee_bps - lag(l.fee_bps, 5) OVER (PARTITION BY l.security_id ORDER BY l.date) AS fee_change,
                  short_cohort_pnl(l.on_loan_qty, m.close) OVER (PARTITION BY l.security_id ORDER BY l.date) AS pnl
           FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id),
         k AS (
           SELECT c.*, crowded_score(sv, fee_bps, dtc, sif) OVER (PARTITION BY date) AS crowded FROM c)
         SELECT s.date, s.security_id,
           squeeze_score(s.otm, s.otm_max20, s.near_breakeven, s.news, s.earnings, s.abnormal_volume)
             OVER (PARTITION BY s.date) AS squeeze,
           k.crowded,
           squeeze_risk_score(k.crowded, k.fee_change, k.pnl, k.pnl * 0.5, k.pnl * 0.25)
             OVER (PARTITION BY s.date) AS risk
         FROM s JOIN k ON s.date = k.date AND s.security_id = k.security_id
         ORDER BY s.date, s.security_id",
    ),
    (
        "function catalog",
        "SELECT name, kind, family, signature FROM lendfusion_functions() ORDER BY name",
    ),
];

async fn run_suite(ctx: &SessionContext) -> Vec<Vec<RecordBatch>> {
    let mut out = vec![];
    for (_, query) in FUNCTION_SUITE {
        out.push(sql(ctx, query).await);
    }
    out
}

fn assert_same_suite(what: &str, expected: &[Vec<RecordBatch>], actual: &[Vec<RecordBatch>]) {
    for (((name, _), e), a) in FUNCTION_SUITE.iter().zip(expected).zip(actual) {
        assert_same_results(&format!("{what}: {name}"), e, a);
    }
}

/// Every function in the suite appears in it: a new function must be added here too.
#[test]
fn the_suite_calls_every_lendfusion_function() {
    let text: String = FUNCTION_SUITE.iter().map(|(_, q)| *q).collect();
    for info in lendfusion_udfs::catalog::function_infos() {
        assert!(
            text.contains(&format!("{}(", info.name)),
            "{} is not in the cluster suite",
            info.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_cluster_matches_one_process() {
    let (root, _) = small_panel().await;
    let embedded = run_suite(&local_session(root).await).await;
    let config = LendfusionConfig {
        data: Some(root.display().to_string()),
        ..Default::default()
    };
    let cluster = EmbeddedCluster::start(&config, 2).await.expect("cluster");
    assert_eq!(cluster.coordinator().worker_count().await, 2);
    let client = cluster.client().await.expect("client");
    let distributed = run_suite(&client).await;
    assert_same_suite("embedded cluster", &embedded, &distributed);

    // The plan really is distributed: cross-sections shuffle on date, histories on security.
    let explain = render(
        &sql(
            &client,
            "EXPLAIN SELECT cs_rank(fee_bps) OVER (PARTITION BY date) AS r,
                    fwd_return(fee_bps, 5) OVER (PARTITION BY security_id ORDER BY date) AS f
             FROM lending",
        )
        .await,
    );
    assert!(explain.contains("distributed_plan"), "{explain}");
    assert!(explain.contains("Hash([date@0]"), "{explain}");
    assert!(explain.contains("Hash([security_id@1]"), "{explain}");

    // Joins on date read both tables partition-aligned in one stage: no shuffle on the keys.
    let explain = render(
        &sql(
            &client,
            "EXPLAIN SELECT l.date, l.security_id, l.fee_bps, m.close
             FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id
             ORDER BY l.date, l.security_id",
        )
        .await,
    );
    // Each stage of the distributed plan starts with "Stage[stage_id=".
    let join_stage = explain
        .split("Stage[stage_id=")
        .skip(1)
        .find(|stage| stage.contains("SortMergeJoinExec"))
        .unwrap_or_else(|| panic!("no stage joins:\n{explain}"));
    assert!(
        join_stage.contains("DataSourceExec") && !join_stage.contains("ShuffleExec"),
        "{explain}"
    );
}

/// The S3 settings of the Garage server, as a user gives them.
fn garage_env(garage: &Garage) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", garage.endpoint.as_str()),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn separate_processes_on_s3_match_one_process() {
    let garage = tokio::task::spawn_blocking(Garage::start)
        .await
        .expect("garage");
    let env = garage_env(&garage);
    let config = LendfusionConfig::from_toml_and_env("", "test", env.clone()).expect("config");

    // The same panel locally (the reference) and in the bucket (what the cluster reads).
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("panel");
    let url = format!("s3://{BUCKET}/cluster/panel");
    let mut remote = options(&local, 60, "2020-01-01", "2020-12-31", 21);
    remote.out = url.clone();
    generate(&remote, &config, None)
        .await
        .expect("generate to s3");
    generate_local(&options(&local, 60, "2020-01-01", "2020-12-31", 21)).await;
    let embedded = run_suite(&local_session(&local).await).await;

    let cluster = ProcessCluster::start(&url, 2, &env);
    cluster.wait_ready(Duration::from_secs(60)).await;
    let client_config = LendfusionConfig {
        data: Some(url),
        ..config
    };
    let client = cluster_client_context(&client_config, &cluster.url())
        .await
        .unwrap_or_else(|e| panic!("client: {e}\n{}", cluster.logs()));
    let distributed = run_suite(&client).await;
    assert_same_suite(
        "coordinator + 2 worker processes on S3",
        &embedded,
        &distributed,
    );
    let pids: Vec<u32> = std::iter::once(cluster.coordinator_pid())
        .chain(cluster.worker_pids())
        .collect();
    assert_allocator_uses_huge_pages(&pids);
}

/// Every `lendfusion` process re-executes itself with glibc's `glibc.malloc.hugetlb=1`
/// (cli/src/huge_pages.rs): each of `pids` runs with the tunable. Where the kernel's transparent
/// huge pages are `madvise`, glibc then marks the large blocks and heaps it maps
/// `MADV_HUGEPAGE` (`hg` among a mapping's flags in smaps) — but only while it holds them: a
/// process that has freed or trimmed them (an idle coordinator, on this test's small panel)
/// shows none. So the flag is asserted of the processes together: at least one of them, the
/// workers that just ran the suite usually, holds such a mapping.
fn assert_allocator_uses_huge_pages(pids: &[u32]) {
    for pid in pids {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        assert!(
            vars.contains(&&b"GLIBC_TUNABLES=glibc.malloc.hugetlb=1"[..]),
            "process {pid} runs without the huge-page tunable"
        );
    }
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if thp.contains("[madvise]") {
        let advised = |pid: &u32| {
            let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
            smaps
                .lines()
                .filter(|line| line.starts_with("VmFlags:"))
                .any(|line| line.split_whitespace().any(|flag| flag == "hg"))
        };
        assert!(
            pids.iter().any(advised),
            "no mapping of processes {pids:?} is MADV_HUGEPAGE"
        );
    }
}
