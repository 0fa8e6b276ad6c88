//! The one session-state recipe. The embedded `sql` command, the coordinator, every worker, the
//! demo and the tests build their DataFusion state here and nowhere else, so that every role
//! has the same functions, object stores, config extensions and tables.

use std::sync::Arc;

use datafusion::common::config::ConfigExtension;
use datafusion::common::extensions_options;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::{SessionContext, SessionState};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use object_store::ObjectStore;
use url::Url;

use crate::aligned_join::AlignPartitionedJoins;
use crate::config::LendfusionConfig;
use crate::error::{LendfusionError, Result};
use crate::memory_fetch::LimitAboveMemoryScans;
use crate::object_stores::{LendfusionObjectStores, parse_root, store_path};
use crate::schema::TABLE_NAMES;
use crate::tables::DatedTable;

extensions_options! {
    /// lendfusion settings that travel with every query (`SET lendfusion.<key> = ...`).
    /// Every role registers this extension: unknown keys would otherwise be dropped silently.
    pub struct LendfusionOptions {
        /// Dataset root the catalog was built from (informational).
        pub data_root: String, default = String::new()
        /// Default threshold in bps above which a name is hard to borrow in reports.
        pub htb_threshold_bps: f64, default = 120.0
    }
}

impl ConfigExtension for LendfusionOptions {
    const PREFIX: &'static str = "lendfusion";
}

/// The DataFusion [`SessionConfig`] every role uses.
pub fn session_config(config: &LendfusionConfig) -> SessionConfig {
    let mut options = LendfusionOptions::default();
    if let Some(root) = &config.data {
        options.data_root = root.clone();
    }
    // No file statistics at planning: DataFusion would answer `count(col)` and `min`/`max` from
    // them without reading a file, and the statistics of a file that lacks a column say "all
    // NULL" — a silent wrong answer where reading the file reports it (see strict_adapter).
    // Statistics are also cached per table on a long-running coordinator, so they could go
    // stale when files are replaced. Row groups are still pruned from footers at read time.
    let mut session = SessionConfig::new()
        .with_collect_statistics(false)
        .with_information_schema(true)
        .with_batch_size(config.execution.batch_size.max(1))
        .with_option_extension(options);
    session
        .options_mut()
        .execution
        .sort_in_place_threshold_bytes = SORT_IN_PLACE_BYTES;
    let partitions = match config.execution.target_partitions {
        0 => PARTITIONS_PER_CORE * cores(),
        n => n,
    };
    session.with_target_partitions(partitions)
}

/// Embedded queries sort a partition in one piece up to 1 GiB
/// (`datafusion.execution.sort_in_place_threshold_bytes`). DataFusion's default (1 MiB)
/// sorts each input batch and merges the runs, which costs a merge with a fan-in of hundreds
/// on a panel partition; sorting the partition at once took the factor-panel job's sorts from
/// 0.37-0.59 s to 0.13-0.20 s each and its peak memory down 15 % (4×), and the 16× job from
/// 21.3-21.5 s to 19.5-19.9 s. The concatenation needs the partition twice for a moment,
/// outside DataFusion's memory accounting, so the cluster, whose workers run under a bounded
/// pool, keeps DataFusion's default (see `cluster::cluster_session_config`). Sessions with this
/// setting also sort by packed integer keys instead of DataFusion's comparison sort
/// (`lendfusion_udfs::planning::key_sort`).
pub const SORT_IN_PLACE_BYTES: usize = 1 << 30;
const _: () =
    assert!(SORT_IN_PLACE_BYTES >= lendfusion_udfs::planning::key_sort::MIN_IN_PLACE_BYTES);

/// Partitions per core of an embedded query when the config leaves the count to us. Window
/// operators buffer a whole partition (a date's cross-section, a security's history) before
/// they compute: four partitions per core make those buffers a quarter the size and keep both
/// cores busy when one partition finishes early. The factor-panel benchmark runs ~6 % faster
/// with ~25 % less peak memory than with one partition per core. (A cluster uses one per core
/// of the coordinator: there every partition is a task, with its own scheduling and files.)
pub const PARTITIONS_PER_CORE: usize = 4;

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Build the session state: config with our extensions, runtime with our object stores, every
/// lendfusion function, and — when the config names a dataset root — the tables under it.
pub async fn session_state(config: &LendfusionConfig) -> Result<SessionState> {
    Ok(session_context(config).await?.state())
}

/// [`session_state`] wrapped in a context, for callers that run SQL directly.
pub async fn session_context(config: &LendfusionConfig) -> Result<SessionContext> {
    session_context_with(config, session_config(config)).await
}

/// The recipe with a given DataFusion config (the cluster roles add Ballista's settings).
pub async fn session_context_with(
    config: &LendfusionConfig,
    session_config: SessionConfig,
) -> Result<SessionContext> {
    let stores = Arc::new(LendfusionObjectStores::new(config.s3.clone()));
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(stores.clone())
        .build_arc()?;
    let builder = SessionStateBuilder::new()
        .with_config(session_config)
        .with_runtime_env(runtime)
        .with_default_features();
    // Joins are aligned before our sort rules see the plan (they rewrite the sorts above).
    let builder = builder.with_physical_optimizer_rule(Arc::new(AlignPartitionedJoins));
    // Last: in cluster plans, a LIMIT pushed into an in-memory scan moves back above it.
    let mut state = lendfusion_udfs::with_optimizer_rules(builder)
        .with_physical_optimizer_rule(Arc::new(LimitAboveMemoryScans))
        .build();
    lendfusion_udfs::register_all(&mut state)?;
    let ctx = SessionContext::new_with_state(state);
    if let Some(root) = &config.data {
        register_tables(&ctx, &stores, root, config).await?;
        crate::views::register_views(&ctx).await?;
    }
    Ok(ctx)
}

/// Register every SPEC table present under `root`; fail clearly if the root is unreachable or
/// holds none of them.
async fn register_tables(
    ctx: &SessionContext,
    stores: &LendfusionObjectStores,
    root: &str,
    config: &LendfusionConfig,
) -> Result<()> {
    let root_url = parse_root(root)?;
    let present = present_tables(stores, &root_url).await?;
    if present.is_empty() {
        return Err(LendfusionError::TableNotFound(format!(
            "no lendfusion tables ({}) under {} ({}): generate a panel with `lendfusion generate --out {root}` or check the path",
            TABLE_NAMES.join(", "),
            root_url,
            stores.describe(&root_url)
        )));
    }
    for name in TABLE_NAMES {
        if present.iter().any(|p| p == name) {
            let table = DatedTable::try_new(&root_url, name, config.layout)?;
            ctx.register_table(name, Arc::new(table))?;
        } else {
            tracing::warn!(table = name, root = %root_url, "table folder not found; not registered");
        }
    }
    Ok(())
}

/// Names of the SPEC tables that have a folder under the root. Reaching the root at all is
/// the first storage access of a session, so its failure is reported with bucket and endpoint.
async fn present_tables(stores: &LendfusionObjectStores, root: &Url) -> Result<Vec<String>> {
    use datafusion::execution::object_store::ObjectStoreRegistry;
    let store: Arc<dyn ObjectStore> = stores.get_store(root)?;
    let prefix = store_path(root)?;
    let listing = match store
        .list_with_delimiter(if prefix.as_ref().is_empty() {
            None
        } else {
            Some(&prefix)
        })
        .await
    {
        Ok(listing) => listing,
        Err(object_store::Error::NotFound { .. }) if root.scheme() == "file" => return Ok(vec![]),
        Err(e) => return Err(storage_error(stores, root, &e)),
    };
    let names = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_string))
        .filter(|name| TABLE_NAMES.contains(&name.as_str()))
        .collect();
    Ok(names)
}

/// A storage error phrased with the place it happened and the usual causes.
pub fn storage_error(
    stores: &LendfusionObjectStores,
    url: &Url,
    e: &object_store::Error,
) -> LendfusionError {
    let text = e.to_string();
    let hint = match storage_cause(e, &text) {
        Some(StorageCause::MissingBucket) => " — the bucket does not exist",
        Some(StorageCause::AccessDenied) => {
            " — access denied: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or [s3] in the config)"
        }
        Some(StorageCause::Unreachable) => " — the endpoint is unreachable",
        None => "",
    };
    LendfusionError::Storage(format!(
        "cannot read {url} ({}){hint}: {text}",
        stores.describe(url)
    ))
}

/// The usual causes of a failed first access to a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StorageCause {
    MissingBucket,
    AccessDenied,
    Unreachable,
}

/// What went wrong, from the error's kind, else the HTTP status and S3 error code in its text.
/// Only the status the server returned counts: the text also holds the request URL, whose port
/// may well contain `404` or `403`.
fn storage_cause(e: &object_store::Error, text: &str) -> Option<StorageCause> {
    match e {
        object_store::Error::NotFound { .. } => return Some(StorageCause::MissingBucket),
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => return Some(StorageCause::AccessDenied),
        _ => {}
    }
    let status = text.split("status code: ").nth(1).and_then(|rest| {
        let digits = rest.get(..3)?;
        digits.parse::<u16>().ok()
    });
    let code_is = |codes: &[&str]| {
        codes
            .iter()
            .any(|code| text.contains(&format!("<Code>{code}</Code>")))
    };
    if code_is(&["NoSuchBucket"]) || status == Some(404) {
        Some(StorageCause::MissingBucket)
    } else if code_is(&[
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
    ]) || matches!(status, Some(401 | 403))
    {
        Some(StorageCause::AccessDenied)
    } else if status.is_none()
        && (text.contains("connect") || text.contains("Connection") || text.contains("dns"))
    {
        Some(StorageCause::Unreachable)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(text: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: text.into(),
        }
    }

    #[test]
    fn storage_causes_come_from_the_status_not_from_the_url() {
        let denied = "Error performing GET http://127.0.0.1:40475/b?list-type=2 in 1.5ms - \
            Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?><Error>\
            <Code>AccessDenied</Code><Message>Forbidden: Invalid signature</Message></Error>";
        let missing = "Error performing GET http://127.0.0.1:40375/b?list-type=2 in 1.5ms - \
            Server returned non-2xx status code: 404 Not Found: <Error><Code>NoSuchBucket</Code>";
        let refused = "Error performing GET http://127.0.0.1:40404/b in 1ms - \
            error sending request: client error (Connect): Connection refused";
        for (text, cause) in [
            (denied, Some(StorageCause::AccessDenied)),
            (missing, Some(StorageCause::MissingBucket)),
            (refused, Some(StorageCause::Unreachable)),
            (
                "Server returned non-2xx status code: 500 Internal Server Error",
                None,
            ),
        ] {
            let e = generic(text);
            assert_eq!(storage_cause(&e, &e.to_string()), cause, "{text}");
        }
        let e = object_store::Error::NotFound {
            path: "b/p".into(),
            source: "gone".into(),
        };
        assert_eq!(
            storage_cause(&e, &e.to_string()),
            Some(StorageCause::MissingBucket)
        );
    }

    #[tokio::test]
    async fn the_recipe_resolves_every_lendfusion_function() {
        let ctx = session_context(&LendfusionConfig::default())
            .await
            .expect("session");
        let state = ctx.state();
        for f in lendfusion_udfs::scalar_functions() {
            assert!(
                state.scalar_functions().contains_key(f.name()),
                "{}",
                f.name()
            );
        }
        for f in lendfusion_udfs::window_functions() {
            assert!(
                state.window_functions().contains_key(f.name()),
                "{}",
                f.name()
            );
        }
        for f in lendfusion_udfs::aggregate_functions() {
            assert!(
                state.aggregate_functions().contains_key(f.name()),
                "{}",
                f.name()
            );
        }
        // DataFusion's own functions are still there, nested ones included.
        for name in ["abs", "make_array", "array_length"] {
            assert!(state.scalar_functions().contains_key(name), "{name}");
        }
        let listed = ctx
            .sql("SELECT count(*) FROM lendfusion_functions()")
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let n =
            arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(listed[0].column(0))
                .value(0);
        let expected = lendfusion_udfs::scalar_functions().len()
            + lendfusion_udfs::window_functions().len()
            + lendfusion_udfs::aggregate_functions().len();
        assert_eq!(n as usize, expected);
        // The config extension is registered: its keys can be set and read.
        ctx.sql("SET lendfusion.htb_threshold_bps = 150")
            .await
            .expect("set");
    }
}
