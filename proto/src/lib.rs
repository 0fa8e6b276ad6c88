//! lendfusion's Flight command messages, generated from `proto/lendfusion.proto` by
//! `scripts/regen-proto.sh` (checked in; CI fails when it drifts from the .proto).

#![allow(
    missing_docs,
    clippy::doc_markdown,
    clippy::derive_partial_eq_without_eq
)]

include!("lendfusion.v1.rs");

/// Type URL of a message packed into a `google.protobuf.Any`.
pub fn type_url(message_name: &str) -> String {
    format!("type.googleapis.com/lendfusion.v1.{message_name}")
}
