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

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::ipc::{MessageHeader, root_as_message};
use arrow_flight::encode::{FlightDataEncoderBuilder, GRPC_TARGET_MAX_FLIGHT_SIZE_BYTES};
use arrow_flight::utils::flight_data_to_arrow_batch;
use arrow_flight::{FlightData, SchemaAsIpc};
use bytes::{Bytes, BytesMut};
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
    let messages = futures::stream::try_unfold(
        (MessageSplitter::default(), blocks),
        |(mut splitter, mut blocks)| async move {
            loop {
                if let Some(message) = splitter.next_message()? {
                    return Ok(Some((message, (splitter, blocks))));
                }
                match blocks.next().await {
                    Some(block) => splitter.push(block?),
                    None if splitter.is_empty() => return Ok(None),
                    None => return Err(truncated()),
                }
            }
        },
    );
    messages_to_flight(schema, Box::pin(messages))
}

/// The Flight messages of the result file at `path`, read from disk one message at a time,
/// each into a buffer of its own size (one copy from the page cache and none after it), on a
/// blocking thread that stays a few messages ahead of the stream. `schema` as for
/// [`ipc_to_flight`].
pub fn file_to_flight(
    schema: Option<SchemaRef>,
    path: PathBuf,
) -> impl Stream<Item = Result<FlightData, ArrowError>> + Send {
    let messages = read_ahead(path, |file| {
        Ok(file.next_message()?.map(|whole| whole.message()))
    });
    messages_to_flight(schema, messages)
}

/// The IPC messages of the result file at `path` as written, one buffer per message (length
/// prefix, header and body; end-of-stream markers left out), read like [`file_to_flight`]
/// reads them: what a coordinator forwards reaches [`ipc_to_flight`] one message per block,
/// so none is copied again.
pub fn file_to_ipc_messages(path: PathBuf) -> impl Stream<Item = Result<Bytes, ArrowError>> + Send {
    read_ahead(path, |file| {
        Ok(file.next_message()?.map(|whole| whole.bytes))
    })
}

/// `next` called on the file at `path` until it returns `None` or fails, on a blocking
/// thread [`READ_AHEAD_MESSAGES`] items ahead of the stream.
fn read_ahead<T: Send + 'static>(
    path: PathBuf,
    next: fn(&mut FileMessages) -> Result<Option<T>, ArrowError>,
) -> impl Stream<Item = Result<T, ArrowError>> + Send + Unpin {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(READ_AHEAD_MESSAGES);
    tokio::task::spawn_blocking(move || {
        let mut file = match FileMessages::open(&path) {
            Ok(file) => file,
            Err(e) => {
                let _ = sender.blocking_send(Err(e));
                return;
            }
        };
        while let Some(item) = next(&mut file).transpose() {
            let failed = item.is_err();
            // Stop when the stream is gone (the client left) or after sending a read error.
            if sender.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// How many messages a file reader reads ahead of the stream that sends them.
const READ_AHEAD_MESSAGES: usize = 4;

/// The Flight messages of a stream of IPC messages (see [`convert`]).
fn messages_to_flight<M>(
    schema: Option<SchemaRef>,
    messages: M,
) -> impl Stream<Item = Result<FlightData, ArrowError>> + Send
where
    M: Stream<Item = Result<Message, ArrowError>> + Send + Unpin,
{
    futures::stream::try_unfold(
        (schema, messages),
        |(mut schema, mut messages)| async move {
            while let Some(message) = messages.next().await {
                if let Some(data) = convert(&mut schema, message?).await? {
                    return Ok::<_, ArrowError>(Some((data, (schema, messages))));
                }
            }
            Ok(None)
        },
    )
    .map_ok(|messages| futures::stream::iter(messages.into_iter().map(Ok)))
    .try_flatten()
}

fn truncated() -> ArrowError {
    ArrowError::IpcError("the result file ends inside a message".into())
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

/// The length prefix of an IPC message: how many bytes it takes (4 or 8) and the length of
/// the flatbuffer header after it (0: an end-of-stream marker). `first` is the first 4 bytes,
/// `next` the 4 after them when the first are the continuation marker.
fn message_prefix(
    first: [u8; 4],
    next: impl FnOnce() -> Result<Option<[u8; 4]>, ArrowError>,
) -> Result<Option<(usize, usize)>, ArrowError> {
    let (prefix, length) = if first == [0xff; 4] {
        match next()? {
            Some(length) => (8, i32::from_le_bytes(length)),
            None => return Ok(None),
        }
    } else {
        // The pre-1.0 format: the length without the continuation marker.
        (4, i32::from_le_bytes(first))
    };
    let length = usize::try_from(length)
        .map_err(|_| ArrowError::IpcError("a negative IPC message length".into()))?;
    Ok(Some((prefix, length)))
}

/// The body length a message's flatbuffer header declares.
fn body_length(header: &[u8]) -> Result<usize, ArrowError> {
    let length = root_as_message(header)
        .map_err(|e| ArrowError::IpcError(format!("a result message is not valid: {e}")))?
        .bodyLength();
    usize::try_from(length).map_err(|_| ArrowError::IpcError("a negative IPC body length".into()))
}

/// Cuts IPC stream bytes, arriving in blocks of any size, into messages. A message inside one
/// block is a slice of it; only a message that straddles blocks is copied (itself, not the
/// blocks).
#[derive(Debug, Default)]
struct MessageSplitter {
    /// Bytes received and not yet cut into messages, oldest first; none empty.
    blocks: VecDeque<Bytes>,
    /// Their total length.
    len: usize,
}

impl MessageSplitter {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, block: Bytes) {
        if !block.is_empty() {
            self.len += block.len();
            self.blocks.push_back(block);
        }
    }

    /// The first `n` bytes (`n <= self.len`), without consuming them.
    fn peek(&self, n: usize) -> Cow<'_, [u8]> {
        match self.blocks.front() {
            Some(front) if front.len() >= n => Cow::Borrowed(&front[..n]),
            _ => {
                let mut bytes = Vec::with_capacity(n);
                for block in &self.blocks {
                    let wanted = (n - bytes.len()).min(block.len());
                    bytes.extend_from_slice(&block[..wanted]);
                    if bytes.len() == n {
                        break;
                    }
                }
                Cow::Owned(bytes)
            }
        }
    }

    /// The first `n` bytes (`n <= self.len`), consumed: a slice of the first block when it
    /// holds them all, else a copy.
    fn take(&mut self, n: usize) -> Bytes {
        self.len -= n;
        if let Some(front) = self.blocks.front_mut()
            && front.len() >= n
        {
            let bytes = front.split_to(n);
            if front.is_empty() {
                self.blocks.pop_front();
            }
            return bytes;
        }
        let mut bytes = BytesMut::with_capacity(n);
        while bytes.len() < n {
            let Some(front) = self.blocks.front_mut() else {
                break;
            };
            let wanted = (n - bytes.len()).min(front.len());
            bytes.extend_from_slice(&front.split_to(wanted));
            if front.is_empty() {
                self.blocks.pop_front();
            }
        }
        bytes.freeze()
    }

    /// The next whole message, skipping end-of-stream markers (a file may hold several
    /// streams one after another); `None` when more bytes are needed.
    fn next_message(&mut self) -> Result<Option<Message>, ArrowError> {
        loop {
            if self.len < 4 {
                return Ok(None);
            }
            let first = self.peek(4);
            let first = [first[0], first[1], first[2], first[3]];
            let prefix = message_prefix(first, || {
                Ok((self.len >= 8).then(|| {
                    let next = self.peek(8);
                    [next[4], next[5], next[6], next[7]]
                }))
            })?;
            let Some((prefix, length)) = prefix else {
                return Ok(None);
            };
            if length == 0 {
                self.take(prefix);
                continue;
            }
            if self.len < prefix + length {
                return Ok(None);
            }
            let body_length = body_length(&self.peek(prefix + length)[prefix..])?;
            if self.len < prefix + length + body_length {
                return Ok(None);
            }
            self.take(prefix);
            let header = self.take(length);
            let body = self.take(body_length);
            return Ok(Some(Message { header, body }));
        }
    }
}

/// Reads an IPC stream file message by message.
struct FileMessages {
    file: std::fs::File,
    /// Bytes of the file not yet read (so a corrupt length cannot ask for more).
    remaining: u64,
}

/// Largest flatbuffer header a result message may have (its schema or batch metadata).
const MAX_HEADER_BYTES: usize = 64 * 1024 * 1024;

impl FileMessages {
    fn open(path: &Path) -> Result<Self, ArrowError> {
        let file = std::fs::File::open(path).map_err(|e| {
            ArrowError::IoError(
                format!("cannot open the result file {}: {e}", path.display()),
                e,
            )
        })?;
        let remaining = file
            .metadata()
            .map_err(|e| ArrowError::IoError(format!("cannot read the result file: {e}"), e))?
            .len();
        Ok(Self { file, remaining })
    }

    /// Exactly `n` more bytes appended to `bytes`; an error when fewer are left.
    fn read_into(&mut self, n: usize, bytes: &mut Vec<u8>) -> Result<(), ArrowError> {
        if (n as u64) > self.remaining {
            return Err(truncated());
        }
        let before = bytes.len();
        bytes.reserve_exact(n);
        // `read_to_end` reads into the spare capacity without zeroing it first (and a file
        // needs no more than two reads for it).
        (&mut self.file)
            .take(n as u64)
            .read_to_end(bytes)
            .map_err(|e| ArrowError::IoError(format!("cannot read the result file: {e}"), e))?;
        if bytes.len() - before != n {
            return Err(truncated());
        }
        self.remaining -= n as u64;
        Ok(())
    }

    /// The next message, skipping end-of-stream markers; `None` at the file's end.
    fn next_message(&mut self) -> Result<Option<WholeMessage>, ArrowError> {
        loop {
            if self.remaining == 0 {
                return Ok(None);
            }
            let mut bytes = Vec::with_capacity(8);
            self.read_into(4, &mut bytes)?;
            let first = [bytes[0], bytes[1], bytes[2], bytes[3]];
            let prefix = message_prefix(first, || {
                self.read_into(4, &mut bytes)?;
                Ok(Some([bytes[4], bytes[5], bytes[6], bytes[7]]))
            })?;
            let Some((prefix, length)) = prefix else {
                return Err(truncated());
            };
            if length == 0 {
                continue;
            }
            if length > MAX_HEADER_BYTES {
                return Err(ArrowError::IpcError(format!(
                    "a result message header of {length} bytes"
                )));
            }
            self.read_into(length, &mut bytes)?;
            let body = body_length(&bytes[prefix..])?;
            self.read_into(body, &mut bytes)?;
            return Ok(Some(WholeMessage {
                bytes: bytes.into(),
                header: prefix..prefix + length,
            }));
        }
    }
}

/// One IPC message as written: its length prefix, header and body in one buffer.
struct WholeMessage {
    bytes: Bytes,
    /// Where the header lies in `bytes` (the body follows it).
    header: std::ops::Range<usize>,
}

impl WholeMessage {
    fn message(self) -> Message {
        Message {
            header: self.bytes.slice(self.header.clone()),
            body: self.bytes.slice(self.header.end..),
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
        let (batches, two_streams) = two_streams();
        let schema = batches[0].schema();
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
    async fn a_message_inside_one_block_is_a_slice_of_it() {
        let batches = [batch(1000, 0), batch(3000, 1000)];
        let bytes = Bytes::from(ipc_stream(&batches, IpcWriteOptions::default()));
        let cut = bytes.len() / 2;
        let blocks = [Ok(bytes.slice(..cut)), Ok(bytes.slice(cut..))];
        let messages: Vec<FlightData> =
            ipc_to_flight(Some(batches[0].schema()), futures::stream::iter(blocks))
                .try_collect()
                .await
                .expect("pass");
        assert_eq!(messages.len(), 2);
        let inside = |b: &Bytes| {
            let range = bytes.as_ptr_range();
            range.contains(&b.as_ptr()) && b.as_ptr_range().end <= range.end
        };
        // The first batch lies inside the first block; the second straddles the cut.
        assert!(inside(&messages[0].data_body), "copied");
        assert!(
            !inside(&messages[1].data_body),
            "straddling but not copied?"
        );
        assert_eq!(decode(batches[0].schema(), &messages)[1], batches[1]);
    }

    async fn from_file(
        schema: Option<SchemaRef>,
        bytes: &[u8],
    ) -> Result<Vec<FlightData>, ArrowError> {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("data.arrow");
        std::fs::write(&path, bytes).expect("write");
        file_to_flight(schema, path).try_collect().await
    }

    /// Three batches in two IPC streams, one after the other (as a file may hold them).
    fn two_streams() -> ([RecordBatch; 3], Vec<u8>) {
        let batches = [batch(1000, 0), batch(1, 1000), batch(4000, 1001)];
        let mut bytes = ipc_stream(&batches[..2], IpcWriteOptions::default());
        bytes.extend(ipc_stream(&batches[2..], IpcWriteOptions::default()));
        (batches, bytes)
    }

    fn assert_not_found(e: &ArrowError) {
        assert!(
            matches!(e, ArrowError::IoError(_, io) if io.kind() == std::io::ErrorKind::NotFound),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_file_read_from_disk_gives_the_same_messages_as_its_bytes() {
        let (batches, two_streams) = two_streams();
        let schema = batches[0].schema();
        let read = from_file(Some(schema.clone()), &two_streams)
            .await
            .expect("read");
        let passed = pass(two_streams.clone(), schema.clone(), 4096)
            .await
            .expect("pass");
        assert_eq!(read, passed);
        let columns =
            |b: &[RecordBatch]| -> Vec<_> { b.iter().map(|b| b.columns().to_vec()).collect() };
        assert_eq!(columns(&decode(schema.clone(), &read)), columns(&batches));

        // Without a schema the file's own comes first; an empty file is an empty result.
        let own = from_file(None, &two_streams).await.expect("read");
        assert_eq!(own.len(), 4);
        let own = arrow_flight::utils::flight_data_to_batches(&own).expect("decode");
        assert_eq!(columns(&own), columns(&batches));
        assert!(from_file(None, &[]).await.expect("empty").is_empty());

        // A file cut anywhere inside a message is an error, whatever the cut.
        for cut in [3, 6, 9, 100, two_streams.len() - 20] {
            let e = from_file(Some(schema.clone()), &two_streams[..cut])
                .await
                .expect_err("truncated");
            assert!(
                e.to_string().contains("ends inside a message"),
                "cut {cut}: {e}"
            );
        }
        let e = file_to_flight(None, "/nonexistent/lendfusion/data.arrow".into())
            .try_collect::<Vec<_>>()
            .await
            .expect_err("missing");
        assert_not_found(&e);
    }

    #[tokio::test]
    async fn a_file_read_as_whole_messages_reaches_the_splitter_one_per_block() {
        let (batches, two_streams) = two_streams();
        let schema = batches[0].schema();
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("data.arrow");
        std::fs::write(&path, &two_streams).expect("write");
        let blocks: Vec<Bytes> = file_to_ipc_messages(path.clone())
            .try_collect()
            .await
            .expect("read");
        // Two schemas and three batches; the end-of-stream markers (8 bytes each) left out.
        assert_eq!(blocks.len(), 5);
        assert_eq!(
            blocks.iter().map(Bytes::len).sum::<usize>(),
            two_streams.len() - 16
        );
        let messages: Vec<FlightData> = ipc_to_flight(
            Some(schema.clone()),
            futures::stream::iter(blocks.iter().cloned().map(Ok)),
        )
        .try_collect()
        .await
        .expect("pass");
        assert_eq!(
            messages,
            from_file(Some(schema.clone()), &two_streams)
                .await
                .expect("read")
        );
        // Every batch is a slice of its block (the blocks after each schema's): nothing
        // copied after the read.
        let batch_blocks = [&blocks[1], &blocks[2], &blocks[4]];
        assert_eq!(messages.len(), batch_blocks.len());
        for (message, block) in messages.iter().zip(batch_blocks) {
            let range = block.as_ptr_range();
            assert!(range.contains(&message.data_body.as_ptr()), "copied");
        }
        let e = file_to_ipc_messages(dir.path().join("gone.arrow"))
            .try_collect::<Vec<_>>()
            .await
            .expect_err("missing");
        assert_not_found(&e);
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
