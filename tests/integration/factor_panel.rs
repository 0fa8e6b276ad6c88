//! The FactorPanel command's SQL on a universe: cross-sections among the day's members, time
//! series over each security's full history (a name that joins the universe keeps its past).

use std::collections::BTreeMap;

use lendfusion_core::factors::{PanelFactor, PanelRequest, panel_sql};
use lendfusion_report::output::{number_column, text_column};

use crate::support::{local_session, small_panel, sql};

type Rows = BTreeMap<(String, String), Vec<Option<f64>>>;

fn rows(batches: &[arrow::record_batch::RecordBatch], columns: &[&str]) -> Rows {
    let dates = text_column(batches, "date");
    let ids = text_column(batches, "security_id");
    let values: Vec<Vec<Option<f64>>> = columns.iter().map(|c| number_column(batches, c)).collect();
    (0..dates.len())
        .map(|i| {
            (
                (dates[i].clone(), ids[i].clone()),
                values.iter().map(|v| v[i]).collect(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panel_ranks_members_and_keeps_each_names_history() {
    let (root, _) = small_panel().await;
    let ctx = local_session(root).await;
    let factor = |expression: &str, name: &str| PanelFactor {
        expression: expression.into(),
        name: name.into(),
    };
    let request = PanelRequest {
        factors: vec![
            factor(
                "ts_zscore(fee_bps, 20) OVER (PARTITION BY security_id ORDER BY date)",
                "z",
            ),
            factor("cs_rank(fee_bps) OVER (PARTITION BY date)", "fee_rank"),
            factor("utilization", ""),
        ],
        universe: "US_SMALL".into(),
        start_date: "2020-06-01".into(),
        end_date: "2021-06-30".into(),
        columns: vec!["market_cap".into()],
        lookback_days: 0,
    };
    let panel = sql(&ctx, &panel_sql(&request).expect("panel sql")).await;
    let schema = panel.first().expect("rows").schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "date",
            "security_id",
            "z",
            "fee_rank",
            "utilization",
            "market_cap"
        ]
    );
    let member = "EXISTS (SELECT 1 FROM universe u WHERE u.universe = 'US_SMALL' \
                  AND u.security_id = h.security_id AND u.start_date <= h.date \
                  AND (u.end_date IS NULL OR h.date <= u.end_date))";
    let reference = sql(
        &ctx,
        &format!(
            "WITH history AS (SELECT l.date, l.security_id, l.fee_bps, m.market_cap, \
               utilization(l.on_loan_qty, l.lendable_qty) AS utilization, \
               ts_zscore(l.fee_bps, 20) OVER (PARTITION BY l.security_id ORDER BY l.date) AS z \
               FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id), \
             members AS (SELECT * FROM history h WHERE {member}), \
             ranked AS (SELECT *, cs_rank(fee_bps) OVER (PARTITION BY date) AS fee_rank, \
               ts_zscore(fee_bps, 20) OVER (PARTITION BY security_id ORDER BY date) AS z_members \
               FROM members) \
             SELECT * FROM ranked WHERE date BETWEEN DATE '2020-06-01' AND DATE '2021-06-30'"
        ),
    )
    .await;
    let columns = ["z", "fee_rank", "utilization", "market_cap"];
    let (ours, want) = (rows(&panel, &columns), rows(&reference, &columns));
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the panel's rows are the members' rows of the dates"
    );
    let close = |a: &Option<f64>, b: &Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * b.abs().max(1.0),
        (None, None) => true,
        _ => false,
    };
    let differ: Vec<String> = ours
        .iter()
        .filter(|(k, v)| !v.iter().zip(&want[*k]).all(|(a, b)| close(a, b)))
        .map(|(k, v)| format!("{k:?}: panel {v:?}, reference {:?}", want[k]))
        .collect();
    assert!(
        differ.is_empty(),
        "{} of {} rows differ, e.g. {:?}",
        differ.len(),
        ours.len(),
        &differ[..differ.len().min(5)]
    );
    // The comparison covers names whose history before they joined changes their z-score.
    let z = number_column(&reference, "z");
    let z_members = number_column(&reference, "z_members");
    let joined = z.iter().zip(&z_members).filter(|(a, b)| a != b).count();
    eprintln!(
        "{} rows; {joined} with a time series that reaches before the name joined",
        ours.len()
    );
    assert!(joined > 0, "no name joined US_SMALL in the panel's dates");
}
