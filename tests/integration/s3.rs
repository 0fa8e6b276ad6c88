//! A round trip through a real S3-compatible server (Garage): generate to s3://, query back,
//! same answers as a local copy; bad credentials and missing buckets give clear errors.

use lendfusion_core::{LendfusionConfig, session_context};
use lendfusion_datagen::generate;

use crate::support::garage::{BUCKET, Garage, KEY_ID, REGION, SECRET};
use crate::support::{generate_local, local_session, options, render, session_error, sql};

/// Configuration exactly as a user would give it: AWS SDK variables.
fn aws_env_config(endpoint: &str, secret: &str) -> LendfusionConfig {
    let env = [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", secret),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    LendfusionConfig::from_toml_and_env("", "test", env).expect("config")
}

/// Row-level results with a total order, so that both sides must match exactly.
const QUERIES: [&str; 5] = [
    "SELECT count(*), min(date), max(date) FROM lending",
    "SELECT * FROM lending WHERE security_id IN ('LF000003', 'LF000042') ORDER BY date, security_id",
    "SELECT * FROM market WHERE date = '2021-05-03' ORDER BY security_id",
    "SELECT * FROM events ORDER BY date, security_id, event_type, category, sentiment LIMIT 200",
    "SELECT l.date, l.security_id, l.on_loan_qty / l.lendable_qty AS util, m.market_cap \
     FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id \
     WHERE l.date BETWEEN '2021-03-01' AND '2021-03-10' ORDER BY l.date, l.security_id",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_round_trip_and_clear_errors() {
    let garage = tokio::task::spawn_blocking(Garage::start)
        .await
        .expect("garage");
    let config = aws_env_config(&garage.endpoint, SECRET);
    assert!(
        config.s3.http_allowed(),
        "a http:// endpoint allows plain HTTP"
    );

    // Generate the same panel to S3 and to a local folder.
    let url = format!("s3://{BUCKET}/panels/p1");
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("p1");
    let mut remote_options = options(&local, 60, "2021-01-01", "2021-06-30", 9);
    remote_options.out = url.clone();
    let remote_summary = generate(&remote_options, &config, None)
        .await
        .expect("generate to s3");
    let local_summary = generate_local(&options(&local, 60, "2021-01-01", "2021-06-30", 9)).await;
    assert_eq!(remote_summary.rows, local_summary.rows);

    let remote_ctx = session_context(&LendfusionConfig {
        data: Some(url.clone()),
        ..config.clone()
    })
    .await
    .expect("session on s3");
    let local_ctx = local_session(&local).await;
    for query in QUERIES {
        let remote = render(&sql(&remote_ctx, query).await);
        let local = render(&sql(&local_ctx, query).await);
        assert_eq!(remote, local, "{query}");
    }

    // Wrong secret: the error names the endpoint and the bucket, and says what to check.
    let bad = aws_env_config(&garage.endpoint, &"0".repeat(64));
    let err = session_error(&LendfusionConfig {
        data: Some(url.clone()),
        ..bad
    })
    .await;
    let text = err.to_string();
    assert!(
        text.contains(&garage.endpoint) && text.contains(BUCKET),
        "{text}"
    );
    assert!(text.contains("access denied"), "{text}");

    // Missing bucket: named, with the endpoint.
    let err = session_error(&LendfusionConfig {
        data: Some("s3://no-such-bucket/panel".into()),
        ..config.clone()
    })
    .await;
    let text = err.to_string();
    assert!(
        text.contains("no-such-bucket") && text.contains(&garage.endpoint),
        "{text}"
    );
    assert!(text.contains("does not exist"), "{text}");

    // Writing to a missing bucket fails the same way.
    remote_options.out = "s3://no-such-bucket/panel".into();
    let err = generate(&remote_options, &config, None)
        .await
        .expect_err("missing bucket");
    assert!(err.to_string().contains("no-such-bucket"), "{err}");
    drop(garage);
}
