//! Who may call the client port: static API keys and handshake-issued bearer tokens.
//!
//! Clients send `authorization: Bearer <token>` on every call. A token is either an API key
//! from the `--api-keys` file or one issued by the Flight handshake to a user who logged in
//! with basic auth (`authorization: Basic base64(name:password)`) and whose password matches
//! the Argon2 hash in `[[auth.users]]`. Only SHA-256 digests of keys and tokens are kept.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use lendfusion_core::{AuthSettings, LendfusionError};
use sha2::{Digest, Sha256};
use tonic::Status;
use tonic::metadata::MetadataMap;

type Digest32 = [u8; 32];

/// Who made a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Auth is off (`--no-auth`).
    Anonymous,
    /// A holder of an API key.
    ApiKey,
    /// A user logged in through the handshake.
    User(String),
}

/// The credentials the server accepts.
#[derive(Debug)]
pub struct Authenticator {
    disabled: bool,
    api_keys: HashSet<Digest32>,
    users: HashMap<String, String>,
    token_ttl: Duration,
    tokens: Mutex<HashMap<Digest32, (String, Instant)>>,
}

impl Authenticator {
    /// Read the API keys file and the users from the settings.
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, LendfusionError> {
        settings.validate()?;
        let mut api_keys = HashSet::new();
        if let Some(path) = &settings.api_keys_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                LendfusionError::Config(format!("cannot read the API keys file {path}: {e}"))
            })?;
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                if line.len() < 16 {
                    return Err(LendfusionError::Config(format!(
                        "{path}: API keys must be at least 16 characters"
                    )));
                }
                api_keys.insert(digest(line));
            }
            if api_keys.is_empty() && settings.users.is_empty() && !settings.disabled {
                return Err(LendfusionError::Config(format!("{path} holds no API key")));
            }
        }
        let mut users = HashMap::new();
        for user in &settings.users {
            PasswordHash::new(&user.password_hash).map_err(|e| {
                LendfusionError::Config(format!(
                    "auth.users {}: password_hash is not a PHC hash string ({e}); \
                     make one with `lendfusion hash-password`",
                    user.name
                ))
            })?;
            users.insert(user.name.clone(), user.password_hash.clone());
        }
        Ok(Self {
            disabled: settings.disabled,
            api_keys,
            users,
            token_ttl: Duration::from_secs(settings.token_ttl_seconds),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// An authenticator that lets every call in (`--no-auth`).
    pub fn disabled() -> Self {
        Self {
            disabled: true,
            api_keys: HashSet::new(),
            users: HashMap::new(),
            token_ttl: Duration::from_secs(3600),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The caller of a request with `metadata`, or `UNAUTHENTICATED`.
    pub fn check(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        if self.disabled {
            return Ok(Principal::Anonymous);
        }
        let Some(token) = bearer_token(metadata) else {
            return Err(Status::unauthenticated(
                "missing credentials: send `authorization: Bearer <token>` (an API key, or the \
                 token the Flight handshake returns for a user name and password)",
            ));
        };
        let key = digest(token);
        if self.api_keys.contains(&key) {
            return Ok(Principal::ApiKey);
        }
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        tokens.retain(|_, (_, expiry)| *expiry > now);
        match tokens.get(&key) {
            Some((user, _)) => Ok(Principal::User(user.clone())),
            None => Err(Status::unauthenticated(
                "invalid or expired token: log in again with the handshake",
            )),
        }
    }

    /// The handshake: basic auth in the headers → a fresh bearer token. With an API key as
    /// bearer token, the same key is handed back.
    pub fn handshake(&self, metadata: &MetadataMap) -> Result<String, Status> {
        if self.disabled {
            return Ok(String::new());
        }
        let Some((user, password)) = basic_credentials(metadata) else {
            if let Some(token) = bearer_token(metadata) {
                self.check(metadata)?;
                return Ok(token.to_string());
            }
            return Err(Status::unauthenticated(
                "the handshake needs `authorization: Basic base64(user:password)`",
            ));
        };
        let verified = self.users.get(&user).is_some_and(|hash| {
            PasswordHash::new(hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        });
        if !verified {
            return Err(Status::unauthenticated("unknown user or wrong password"));
        }
        let token = random_token()?;
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.insert(digest(&token), (user, Instant::now() + self.token_ttl));
        Ok(token)
    }
}

/// An Argon2id hash of `password` in PHC form, for `[[auth.users]]`.
pub fn hash_password(password: &str) -> Result<String, LendfusionError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| LendfusionError::Config(format!("no randomness for a salt: {e}")))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| LendfusionError::Config(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| LendfusionError::Config(format!("cannot hash the password: {e}")))
}

fn digest(secret: &str) -> Digest32 {
    Sha256::digest(secret.as_bytes()).into()
}

fn random_token() -> Result<String, Status> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Status::internal(format!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn authorization(metadata: &MetadataMap) -> Option<&str> {
    metadata.get("authorization")?.to_str().ok().map(str::trim)
}

/// The token of `authorization: Bearer <token>` (scheme case-insensitive).
pub fn bearer_token(metadata: &MetadataMap) -> Option<&str> {
    let value = authorization(metadata)?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

fn basic_credentials(metadata: &MetadataMap) -> Option<(String, String)> {
    let value = authorization(metadata)?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}
