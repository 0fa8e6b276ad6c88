//! Object stores for `file://`, plain paths and `s3://`, built once per bucket and cached.
//!
//! Ballista's and DataFusion's default registries build a new S3 client for every lookup of an
//! unknown bucket; this one builds a client per bucket on first use and reuses it (connection
//! pool, credential cache) for every later query in the process.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::ObjectStoreRegistry;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use url::Url;

use crate::config::S3Settings;
use crate::error::{LendfusionError, Result};

/// Caching registry: one store per `scheme://bucket`, S3 clients configured from [`S3Settings`].
#[derive(Debug)]
pub struct LendfusionObjectStores {
    s3: S3Settings,
    stores: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl LendfusionObjectStores {
    /// A registry with the local file system registered and S3 buckets built on demand.
    pub fn new(s3: S3Settings) -> Self {
        let mut stores: HashMap<String, Arc<dyn ObjectStore>> = HashMap::new();
        stores.insert("file://".to_string(), Arc::new(LocalFileSystem::new()));
        Self {
            s3,
            stores: RwLock::new(stores),
        }
    }

    /// The S3 settings the registry builds clients with.
    pub fn s3_settings(&self) -> &S3Settings {
        &self.s3
    }

    /// A human description of where an `s3://` URL points, for error messages.
    pub fn describe(&self, url: &Url) -> String {
        match url.scheme() {
            "s3" => format!(
                "bucket `{}` at endpoint {}",
                url.host_str().unwrap_or(""),
                self.s3
                    .endpoint
                    .as_deref()
                    .unwrap_or("<AWS default endpoint>")
            ),
            _ => url.to_string(),
        }
    }

    /// The store serving `url`, built and cached on first use.
    pub fn store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.get_store(url)
            .map_err(|e| LendfusionError::Storage(format!("{}: {e}", self.describe(url))))
    }

    fn build_s3(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        // Start from the process environment so that every AWS credential source object_store
        // knows (web identity, container credentials, ...) keeps working, then apply the
        // resolved settings, which already include the AWS_* variables we read ourselves.
        let s = &self.s3;
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_allow_http(s.http_allowed())
            .with_virtual_hosted_style_request(s.virtual_hosted_style.unwrap_or(false));
        if let Some(endpoint) = &s.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &s.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &s.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &s.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = &s.session_token {
            builder = builder.with_token(token);
        }
        let store = builder.build().map_err(|e| {
            LendfusionError::Storage(format!(
                "cannot configure S3 client for bucket `{bucket}` at endpoint {}: {e}",
                s.endpoint.as_deref().unwrap_or("<AWS default endpoint>")
            ))
        })?;
        Ok(Arc::new(store))
    }

    fn key(url: &Url) -> String {
        format!("{}://{}", url.scheme(), url.authority())
    }
}

impl ObjectStoreRegistry for LendfusionObjectStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.stores
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(Self::key(url), store)
    }

    fn deregister_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.stores
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&Self::key(url))
            .ok_or_else(|| DataFusionError::Internal(format!("no object store for {url}")))
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        let key = Self::key(url);
        if let Some(store) = self
            .stores
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
        {
            return Ok(Arc::clone(store));
        }
        match url.scheme() {
            "s3" | "s3a" => {
                let bucket = url.host_str().unwrap_or_default();
                if bucket.is_empty() {
                    return Err(DataFusionError::Plan(format!(
                        "{url}: S3 URL without a bucket"
                    )));
                }
                let store = self.build_s3(bucket)?;
                let mut stores = self.stores.write().unwrap_or_else(|p| p.into_inner());
                // Another thread may have built it meanwhile: keep the first one.
                Ok(Arc::clone(stores.entry(key).or_insert(store)))
            }
            other => Err(DataFusionError::Plan(format!(
                "unsupported storage scheme `{other}` in {url}: use file://, a plain path or s3://"
            ))),
        }
    }
}

/// Parse a dataset root (`s3://bucket/prefix`, `file:///abs`, or a plain relative or absolute
/// path) into a URL that ends with `/`.
pub fn parse_root(root: &str) -> Result<Url> {
    let root = root.trim();
    if root.is_empty() {
        return Err(LendfusionError::Config("empty dataset root".into()));
    }
    let mut url = if root.contains("://") {
        Url::parse(root).map_err(|e| LendfusionError::Config(format!("invalid URL {root}: {e}")))?
    } else {
        let path = std::path::Path::new(root);
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| LendfusionError::Config(format!("cannot resolve {root}: {e}")))?
                .join(path)
        };
        Url::from_directory_path(&absolute).map_err(|()| {
            LendfusionError::Config(format!("cannot turn {} into a URL", absolute.display()))
        })?
    };
    if url.scheme() == "s3a" {
        url = Url::parse(&url.as_str().replacen("s3a://", "s3://", 1))
            .map_err(|e| LendfusionError::Config(e.to_string()))?;
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// The object-store path of `url` (no leading slash, percent-decoded).
pub fn store_path(url: &Url) -> Result<object_store::path::Path> {
    let decoded = percent_decode(url.path());
    object_store::path::Path::parse(decoded.trim_matches('/'))
        .map_err(|e| LendfusionError::Config(format!("invalid object path in {url}: {e}")))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let Some(v) = hex {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_parse() {
        assert_eq!(parse_root("s3://b/p").expect("s3").as_str(), "s3://b/p/");
        assert_eq!(parse_root("s3a://b").expect("s3a").as_str(), "s3://b/");
        assert_eq!(
            parse_root("/tmp/x").expect("abs").as_str(),
            "file:///tmp/x/"
        );
        assert!(parse_root("rel").expect("rel").as_str().ends_with("/rel/"));
        assert_eq!(
            store_path(&parse_root("s3://b/a%20b").expect("url"))
                .expect("p")
                .as_ref(),
            "a b"
        );
        assert_eq!(
            store_path(&parse_root("s3://b").expect("url"))
                .expect("p")
                .as_ref(),
            ""
        );
    }

    #[test]
    fn s3_clients_are_cached_per_bucket() {
        let reg = LendfusionObjectStores::new(S3Settings {
            endpoint: Some("http://127.0.0.1:1".into()),
            region: Some("r".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            ..Default::default()
        });
        let a = reg
            .get_store(&Url::parse("s3://one/x").expect("url"))
            .expect("store");
        let b = reg
            .get_store(&Url::parse("s3://one/y").expect("url"))
            .expect("store");
        let c = reg
            .get_store(&Url::parse("s3://two/").expect("url"))
            .expect("store");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(reg.get_store(&Url::parse("gs://x/").expect("url")).is_err());
    }
}
