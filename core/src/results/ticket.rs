//! Result tickets: a client may fetch one result partition straight from the worker that holds
//! it, with a ticket the coordinator signed.
//!
//! A ticket is `LFR1`, its expiry (seconds since 1970, little-endian u64), Ballista's fetch
//! action for the partition, and an HMAC-SHA256 of all that under the key derived from
//! `cluster.secret`, which the coordinator and every worker share. A worker serves a ticket
//! whose signature holds and which has not expired; it cannot name any other file. The
//! coordinator accepts the same tickets on its own port (for clients that ignore endpoint
//! locations) and fetches the partition for them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 4] = b"LFR1";
const MAC_LEN: usize = 32;
const BLOCK: usize = 64;

/// The key result tickets are signed with.
#[derive(Clone)]
pub struct TicketKey([u8; 32]);

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketKey(..)")
    }
}

impl TicketKey {
    /// The key of a cluster whose shared secret is `secret`.
    pub fn from_secret(secret: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"lendfusion result tickets v1\0");
        hasher.update(secret.as_bytes());
        Self(hasher.finalize().into())
    }

    /// The key of a cluster whose settings are `cluster`: none without `cluster.secret`.
    pub fn of_cluster(cluster: &crate::config::ClusterSettings) -> Option<Self> {
        cluster
            .secret
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(Self::from_secret)
    }

    /// The key a coordinator signs result tickets with: only with
    /// `server.result_endpoints = "workers"`, which needs `cluster.secret` and no TLS.
    pub fn for_coordinator(config: &crate::LendfusionConfig) -> crate::Result<Option<Self>> {
        if config.server.result_endpoints != crate::server_config::ResultEndpoints::Workers {
            return Ok(None);
        }
        if config.server.tls_files()?.is_some() {
            return Err(crate::LendfusionError::Config(
                "server.result_endpoints = \"workers\" sends results from the workers' data \
                 ports in plain text, which defeats TLS on the client port: use \"coordinator\" \
                 with TLS"
                    .into(),
            ));
        }
        Self::of_cluster(&config.cluster).map(Some).ok_or_else(|| {
            crate::LendfusionError::Config(
                "server.result_endpoints = \"workers\" needs cluster.secret (the same on the \
                 coordinator and every worker; LENDFUSION_CLUSTER__SECRET)"
                    .into(),
            )
        })
    }

    /// A ticket for Ballista fetch `action` (encoded), valid for `lifetime`.
    pub fn sign(&self, action: &[u8], lifetime: Duration) -> Vec<u8> {
        let expires = (SystemTime::now() + lifetime)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut ticket = Vec::with_capacity(MAGIC.len() + 8 + action.len() + MAC_LEN);
        ticket.extend_from_slice(MAGIC);
        ticket.extend_from_slice(&expires.to_le_bytes());
        ticket.extend_from_slice(action);
        let mac = self.mac(&ticket);
        ticket.extend_from_slice(&mac);
        ticket
    }

    /// The fetch action of a valid ticket.
    pub fn open<'t>(&self, ticket: &'t [u8]) -> Result<&'t [u8], TicketError> {
        if !is_result_ticket(ticket) || ticket.len() < MAGIC.len() + 8 + MAC_LEN {
            return Err(TicketError::Malformed);
        }
        let (signed, mac) = ticket.split_at(ticket.len() - MAC_LEN);
        let expected = self.mac(signed);
        // Constant time: no early exit on the first differing byte.
        let difference = expected
            .iter()
            .zip(mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if difference != 0 {
            return Err(TicketError::BadSignature);
        }
        let mut expires = [0u8; 8];
        expires.copy_from_slice(&signed[MAGIC.len()..MAGIC.len() + 8]);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if u64::from_le_bytes(expires) < now {
            return Err(TicketError::Expired);
        }
        Ok(&signed[MAGIC.len() + 8..])
    }

    /// HMAC-SHA256 (RFC 2104) of `message`.
    fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut key = [0u8; BLOCK];
        key[..32].copy_from_slice(&self.0);
        let pad = |byte: u8| key.map(|k| k ^ byte);
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize()
            .into()
    }
}

/// Whether `ticket` is a result ticket (signed or not).
pub fn is_result_ticket(ticket: &[u8]) -> bool {
    ticket.starts_with(MAGIC)
}

/// Why a result ticket is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketError {
    /// Not a result ticket, or cut short.
    Malformed,
    /// Not signed with this cluster's key (another cluster's, or altered).
    BadSignature,
    /// Past its expiry: the result may be gone; run the query again.
    Expired,
}

impl std::fmt::Display for TicketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Malformed => "not a lendfusion result ticket",
            Self::BadSignature => {
                "the result ticket's signature does not hold (another cluster's ticket, an \
                 altered one, or cluster.secret differs between coordinator and worker)"
            }
            Self::Expired => "the result ticket has expired; run the query again",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2 with our 32-byte key set to "Jefe" zero-padded: HMAC pads a
        // short key with zeros, so the result must equal the RFC's.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = TicketKey(key).mac(b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_coordinator_signs_only_when_results_come_from_workers_with_a_secret() {
        use crate::server_config::ResultEndpoints;
        let mut config = crate::LendfusionConfig::default();
        config.cluster.secret = Some("s".into());
        assert!(matches!(TicketKey::for_coordinator(&config), Ok(None)));
        config.server.result_endpoints = ResultEndpoints::Workers;
        assert!(matches!(TicketKey::for_coordinator(&config), Ok(Some(_))));
        config.server.tls_cert = Some("cert.pem".into());
        config.server.tls_key = Some("key.pem".into());
        let e = TicketKey::for_coordinator(&config).expect_err("TLS");
        assert!(e.to_string().contains("TLS"), "{e}");
        config.server.tls_cert = None;
        config.server.tls_key = None;
        config.cluster.secret = Some(String::new());
        let e = TicketKey::for_coordinator(&config).expect_err("no secret");
        assert!(e.to_string().contains("cluster.secret"), "{e}");
    }

    #[test]
    fn tickets_open_only_with_their_key_unaltered_and_in_time() {
        let key = TicketKey::from_secret("s3cret");
        let ticket = key.sign(b"fetch partition 3", Duration::from_secs(60));
        assert!(is_result_ticket(&ticket));
        assert_eq!(key.open(&ticket), Ok(&b"fetch partition 3"[..]));

        let other = TicketKey::from_secret("other");
        assert_eq!(other.open(&ticket), Err(TicketError::BadSignature));
        let mut altered = ticket.clone();
        altered[14] ^= 1;
        assert_eq!(key.open(&altered), Err(TicketError::BadSignature));
        assert_eq!(key.open(b"LFR1"), Err(TicketError::Malformed));
        assert_eq!(key.open(b"statement"), Err(TicketError::Malformed));

        let expired = key.sign(b"x", Duration::ZERO);
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(key.open(&expired), Err(TicketError::Expired));
    }
}
