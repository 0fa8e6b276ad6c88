//! A worker's result file, as Arrow IPC stream bytes, turned into Flight messages without
//! decoding it.
//!
//! An IPC stream is a sequence of messages — `0xFFFFFFFF`, a little-endian length, a
//! flatbuffer header, then a body — and a Flight `FlightData` is exactly one of them: header
//! and body. So a record-batch message of the file is sent to the client as it was written
//! (zero copies when it lies inside one transport block), where decoding it into arrays and
//! encoding them again would copy every byte twice. The stream's own schema messages are
//! checked against the result's schema and dropped (the client gets one schema, first); a
//! batch that is compressed, or larger than a Flight message should be, goes the slow way:
//! decoded, split and encoded like any other batch. Results with dictionary columns are not
//! passed through (their dictionary ids are per file): callers decode those.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::ipc::{MessageHeader, root_as_message};
use arrow_flight::encode::{FlightDataEncoderBuilder, GRPC_TARGET_MAX_FLIGHT_SIZE_BYTES};
use arrow_flight::utils::flight_data_to_arrow_batch;
use arrow_flight::{FlightData, SchemaAsIpc};
use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt, TryStreamExt};

/// Whether results of `schema` can be passed through (no dictionary anywhere in it).
pub fn can_pass_through(schema: &Schema) -> bool {
    fn plain(data_type: &DataType) -> bool {
        match data_type {
            DataType::Dictionary(_, _) => false,
            DataType::List(f)
            | DataType::LargeList(f)
            | DataType::ListView(f)
            | DataType::LargeListView(f)
            | DataType::FixedSizeList(f, _)
            | DataType::Map(f, _) => plain(f.data_type()),
            DataType::Struct(fields) => fields.iter().all(|f| plain(f.data_type())),
            DataType::Union(fields, _) => fields.iter().all(|(_, f)| plain(f.data_type())),
            DataType::RunEndEncoded(a, b) => plain(a.data_type()) && plain(b.data_type()),
            _ => true,
        }
    }
    schema.fields().iter().all(|f| plain(f.data_type()))
}

/// The schema message a Flight stream of `schema` starts with.
pub fn schema_message(schema: &Schema) -> Result<FlightData, ArrowError> {
    Ok(SchemaAsIpc::new(schema, &Default::default()).into())
}

/// The Flight messages of one result file's IPC stream bytes (`blocks`, cut anywhere). With
/// `schema`, the result's schema, the file's batches follow one another without a schema
/// message (the caller sends it once: [`schema_message`]); without, the file's own schema
/// comes first and is the result's.
pub fn ipc_to_flight<S>(
    schema: Option<SchemaRef>,
    blocks: S,
) -> impl Stream<Item = Result<FlightData, ArrowError>> + Send
where
    S: Stream<Item = Result<Bytes, ArrowError>> + Send + Unpin,
{
    let splitter = MessageSplitter::default();
    futures::stream::try_unfold(
        (splitter, blocks, schema),
        |(mut splitter, mut blocks, mut schema)| async move {
            loop {
                if let Some(message) = splitter.next_message()? {
                    match convert(&mut schema, message).await? {
                        Some(data) => return Ok(Some((data, (splitter, blocks, schema)))),
                        None => continue,
                    }
                }
                match blocks.next().await {
                    Some(block) => splitter.push(block?),
                    None if splitter.is_empty() => return Ok(None),
                    None => {
                        return Err(ArrowError::IpcError(
                            "the result file ends inside a message".into(),
                        ));
                    }
                }
            }
        },
    )
    .map_ok(|messages| futures::stream::iter(messages.into_iter().map(Ok)))
    .try_flatten()
}

/// One IPC message: its flatbuffer header and its body.
#[derive(Debug)]
struct Message {
    header: Bytes,
    body: Bytes,
}

/// What one IPC message becomes: nothing (a schema, checked), one Flight message (a batch as
/// written) or several (a batch decoded and split).
async fn convert(
    schema: &mut Option<SchemaRef>,
    message: Message,
) -> Result<Option<Vec<FlightData>>, ArrowError> {
    let parsed = root_as_message(&message.header)
        .map_err(|e| ArrowError::IpcError(format!("a result message is not valid: {e}")))?;
    match parsed.header_type() {
        MessageHeader::Schema => {
            let written = parsed
                .header_as_schema()
                .map(arrow::ipc::convert::fb_to_schema)
                .ok_or_else(|| ArrowError::IpcError("a schema message without schema".into()))?;
            match schema {
                Some(schema) => {
                    same_types(schema, &written)?;
                    Ok(None)
                }
                None if can_pass_through(&written) => {
                    *schema = Some(Arc::new(written));
                    Ok(Some(vec![FlightData {
                        data_header: message.header,
                        ..Default::default()
                    }]))
                }
                None => Err(ArrowError::IpcError(
                    "a result with dictionary columns cannot be sent as written".into(),
                )),
            }
        }
        MessageHeader::RecordBatch => {
            let schema = schema.as_ref().ok_or_else(|| {
                ArrowError::IpcError("a result file starts without schema".into())
            })?;
            let compressed = parsed
                .header_as_record_batch()
                .is_some_and(|b| b.compression().is_some());
            let data = FlightData {
                data_header: message.header,
                data_body: message.body,
                ..Default::default()
            };
            let size = data.data_header.len() + data.data_body.len();
            if !compressed && size <= GRPC_TARGET_MAX_FLIGHT_SIZE_BYTES {
                Ok(Some(vec![data]))
            } else {
                reencode(schema, &data).await.map(Some)
            }
        }
        other => Err(ArrowError::IpcError(format!(
            "a result file holds a {other:?} message, which results without dictionaries never do"
        ))),
    }
}

/// A batch decoded and encoded again, in Flight messages of the usual size, uncompressed.
async fn reencode(schema: &SchemaRef, data: &FlightData) -> Result<Vec<FlightData>, ArrowError> {
    let batch = flight_data_to_arrow_batch(data, schema.clone(), &HashMap::new())?;
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(schema.clone())
        .build(futures::stream::iter([Ok(batch)]));
    let mut messages: Vec<FlightData> = encoded
        .try_collect()
        .await
        .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
    // The encoder starts with the schema, which the stream has already sent.
    messages.remove(0);
    Ok(messages)
}

/// The written schema's column types are the result's (names and nullability may differ:
/// the bytes of a column depend on its type only).
fn same_types(expected: &Schema, written: &Schema) -> Result<(), ArrowError> {
    let types = |s: &Schema| -> Vec<DataType> {
        s.fields()
            .iter()
            .map(|f: &Arc<Field>| f.data_type().clone())
            .collect()
    };
    if types(expected) == types(written) {
        Ok(())
    } else {
        Err(ArrowError::SchemaError(format!(
            "a result file's columns ({written}) are not the result's ({expected})"
        )))
    }
}

/// Cuts IPC stream bytes, arriving in blocks of any size, into messages.
#[derive(Debug, Default)]
struct MessageSplitter {
    /// Bytes received and not yet cut into messages.
    pending: Bytes,
}

impl MessageSplitter {
    fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn push(&mut self, block: Bytes) {
        if self.pending.is_empty() {
            // The usual case: the last block ended on a message boundary; no copy.
            self.pending = block;
        } else {
            let mut joined = BytesMut::with_capacity(self.pending.len() + block.len());
            joined.extend_from_slice(&self.pending);
            joined.extend_from_slice(&block);
            self.pending = joined.freeze();
        }
    }

    /// The next whole message, skipping end-of-stream markers (a file may hold several
    /// streams one after another); `None` when more bytes are needed.
    fn next_message(&mut self) -> Result<Option<Message>, ArrowError> {
        loop {
            let bytes = &self.pending[..];
            if bytes.len() < 4 {
                return Ok(None);
            }
            let (prefix, length) = if bytes[..4] == [0xff; 4] {
                if bytes.len() < 8 {
                    return Ok(None);
                }
                (
                    8,
                    i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
                )
            } else {
                // The pre-1.0 format: the length without the continuation marker.
                (
                    4,
                    i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
                )
            };
            let length = usize::try_from(length)
                .map_err(|_| ArrowError::IpcError("a negative IPC message length".into()))?;
            if length == 0 {
                self.pending.advance(prefix);
                continue;
            }
            if bytes.len() < prefix + length {
                return Ok(None);
            }
            let header = &bytes[prefix..prefix + length];
            let body_length = root_as_message(header)
                .map_err(|e| ArrowError::IpcError(format!("a result message is not valid: {e}")))?
                .bodyLength();
            let body_length = usize::try_from(body_length)
                .map_err(|_| ArrowError::IpcError("a negative IPC body length".into()))?;
            let total = prefix + length + body_length;
            if bytes.len() < total {
                return Ok(None);
            }
            let header = self.pending.slice(prefix..prefix + length);
            let body = self.pending.slice(prefix + length..total);
            self.pending.advance(total);
            return Ok(Some(Message { header, body }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
    use arrow::record_batch::RecordBatch;

    fn batch(rows: usize, offset: i64) -> RecordBatch {
        let ids: Vec<i64> = (0..rows as i64).map(|i| i + offset).collect();
        let names: Vec<Option<String>> = ids
            .iter()
            .map(|i| (i % 7 != 0).then(|| format!("S{i}")))
            .collect();
        let values: Vec<Option<f64>> = ids
            .iter()
            .map(|i| (i % 5 != 0).then_some(*i as f64 / 3.0))
            .collect();
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(ids)) as _),
            ("name", Arc::new(StringArray::from(names)) as _),
            ("value", Arc::new(Float64Array::from(values)) as _),
        ])
        .expect("batch")
    }

    fn ipc_stream(batches: &[RecordBatch], options: IpcWriteOptions) -> Vec<u8> {
        let mut writer =
            StreamWriter::try_new_with_options(Vec::new(), &batches[0].schema(), options)
                .expect("writer");
        for b in batches {
            writer.write(b).expect("write");
        }
        writer.into_inner().expect("finish")
    }

    fn decode(schema: SchemaRef, messages: &[FlightData]) -> Vec<RecordBatch> {
        messages
            .iter()
            .map(|m| {
                flight_data_to_arrow_batch(m, schema.clone(), &HashMap::new()).expect("decode")
            })
            .collect()
    }

    async fn pass(
        bytes: Vec<u8>,
        schema: SchemaRef,
        block: usize,
    ) -> Result<Vec<FlightData>, ArrowError> {
        let blocks: Vec<Result<Bytes, ArrowError>> = bytes
            .chunks(block)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        ipc_to_flight(Some(schema), futures::stream::iter(blocks))
            .try_collect()
            .await
    }

    #[tokio::test]
    async fn batches_arrive_as_written_whatever_the_block_size() {
        let batches = [batch(1000, 0), batch(1, 1000), batch(4000, 1001)];
        let schema = batches[0].schema();
        let mut two_streams = ipc_stream(&batches[..2], IpcWriteOptions::default());
        two_streams.extend(ipc_stream(&batches[2..], IpcWriteOptions::default()));
        for block in [1, 7, 64, 4096, 1 << 20] {
            let messages = pass(two_streams.clone(), schema.clone(), block)
                .await
                .expect("pass");
            assert_eq!(messages.len(), 3, "block {block}");
            let columns =
                |b: &[RecordBatch]| -> Vec<_> { b.iter().map(|b| b.columns().to_vec()).collect() };
            assert_eq!(
                columns(&decode(schema.clone(), &messages)),
                columns(&batches),
                "block {block}"
            );
        }
    }

    #[tokio::test]
    async fn without_a_schema_the_files_own_comes_first() {
        let b = batch(100, 0);
        let bytes = ipc_stream(&[b.clone(), b.clone()], IpcWriteOptions::default());
        let blocks = futures::stream::iter([Ok(Bytes::from(bytes))]);
        let messages: Vec<FlightData> = ipc_to_flight(None, blocks)
            .try_collect()
            .await
            .expect("pass");
        assert_eq!(messages.len(), 3);
        let decoded = arrow_flight::utils::flight_data_to_batches(&messages).expect("decode");
        assert_eq!(decoded, vec![b.clone(), b]);
    }

    #[tokio::test]
    async fn large_and_compressed_batches_are_reencoded_in_usual_sizes() {
        let big = batch(200_000, 0);
        let schema = big.schema();
        let messages = pass(
            ipc_stream(std::slice::from_ref(&big), IpcWriteOptions::default()),
            schema.clone(),
            1 << 20,
        )
        .await
        .expect("pass");
        assert!(messages.len() > 1);
        assert!(
            messages
                .iter()
                .all(|m| m.data_body.len() <= 2 * GRPC_TARGET_MAX_FLIGHT_SIZE_BYTES)
        );
        let rows: Vec<RecordBatch> = decode(schema.clone(), &messages);
        let joined = arrow::compute::concat_batches(&schema, &rows).expect("concat");
        assert_eq!(joined, big);

        let lz4 = IpcWriteOptions::default()
            .try_with_compression(Some(arrow::ipc::CompressionType::LZ4_FRAME))
            .expect("lz4");
        let small = batch(100, 0);
        let messages = pass(
            ipc_stream(std::slice::from_ref(&small), lz4),
            schema.clone(),
            333,
        )
        .await
        .expect("pass");
        assert!(messages.iter().all(|m| {
            root_as_message(&m.data_header)
                .expect("header")
                .header_as_record_batch()
                .is_some_and(|b| b.compression().is_none())
        }));
        assert_eq!(decode(schema, &messages), vec![small]);
    }

    #[tokio::test]
    async fn a_truncated_file_or_other_columns_are_errors() {
        let b = batch(100, 0);
        let schema = b.schema();
        let mut bytes = ipc_stream(std::slice::from_ref(&b), IpcWriteOptions::default());
        bytes.truncate(bytes.len() - 20);
        let e = pass(bytes, schema, 64).await.expect_err("truncated");
        assert!(e.to_string().contains("ends inside a message"), "{e}");

        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)]));
        let e = pass(ipc_stream(&[b], IpcWriteOptions::default()), other, 64)
            .await
            .expect_err("types");
        assert!(e.to_string().contains("not the result's"), "{e}");
        assert!(!can_pass_through(&Schema::new(vec![Field::new(
            "d",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true
        )])));
    }
}
