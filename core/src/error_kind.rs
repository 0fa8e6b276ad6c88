//! What kind of trouble a query met, and the message a person can act on.
//!
//! An error of the engine is a chain (`Shared(External(ArrowError(DivideByZero)))`): what a
//! person needs is at its root, and its kind decides the gRPC status a client gets.
//! [`classify`] walks the chain to that root. On a cluster the error of a task crosses from
//! the worker to the coordinator as text that Ballista formats with `{:?}`, so the worker puts
//! the classified error into that text between markers ([`task_error`], [`tag`]) and the
//! coordinator takes it out again ([`untag`]): no Rust debug text reaches a client.

use std::error::Error;

use arrow::error::ArrowError;
use ballista_core::error::BallistaError;
use datafusion::error::DataFusionError;

use crate::error::LendfusionError;
use crate::strict_adapter::SCHEMA_MISMATCH;

/// The kinds of query errors, each with its gRPC status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The query asks for something that cannot be computed: division by zero, a bad cast, a
    /// bad function argument found at run time, a planning error (`INVALID_ARGUMENT`).
    InvalidArgument,
    /// Something the query names does not exist (`NOT_FOUND`).
    NotFound,
    /// A data file is unreadable or does not match its table (`FAILED_PRECONDITION`).
    BadFile,
    /// Storage, the network or a worker failed (`UNAVAILABLE`).
    Unavailable,
    /// A memory limit was reached (`RESOURCE_EXHAUSTED`).
    ResourcesExhausted,
    /// A fault of lendfusion itself (`INTERNAL`).
    Internal,
}

const KINDS: [(ErrorKind, &str); 6] = [
    (ErrorKind::InvalidArgument, "invalid_argument"),
    (ErrorKind::NotFound, "not_found"),
    (ErrorKind::BadFile, "bad_file"),
    (ErrorKind::Unavailable, "unavailable"),
    (ErrorKind::ResourcesExhausted, "resources_exhausted"),
    (ErrorKind::Internal, "internal"),
];

impl ErrorKind {
    /// The gRPC status code of this kind.
    pub fn code(self) -> tonic::Code {
        match self {
            ErrorKind::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorKind::NotFound => tonic::Code::NotFound,
            ErrorKind::BadFile => tonic::Code::FailedPrecondition,
            ErrorKind::Unavailable => tonic::Code::Unavailable,
            ErrorKind::ResourcesExhausted => tonic::Code::ResourceExhausted,
            ErrorKind::Internal => tonic::Code::Internal,
        }
    }

    fn name(self) -> &'static str {
        KINDS
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("internal", |k| k.1)
    }
}

/// An error reduced to its kind and a plain message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// What kind of trouble.
    pub kind: ErrorKind,
    /// What happened, without the wrappers of the chain.
    pub message: String,
}

impl Classified {
    fn new(kind: ErrorKind, message: impl std::fmt::Display) -> Self {
        let message = message.to_string();
        // DataFusion appends a backtrace after this separator when built to capture one.
        let message = message
            .split(DataFusionError::BACK_TRACE_SEP)
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        Self { kind, message }
    }

    /// The gRPC status for this error.
    pub fn status(&self) -> tonic::Status {
        tonic::Status::new(self.kind.code(), self.message.clone())
    }
}

impl std::fmt::Display for Classified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for Classified {}

/// The kind and plain message of an engine error (its root cause).
pub fn classify(err: &DataFusionError) -> Classified {
    let mut current: &(dyn Error + 'static) = err;
    // Deep chains are walked without recursion; a cycle cannot happen, a bound is cheap.
    for _ in 0..64 {
        match step(current) {
            Step::Done(classified) => return classified,
            Step::Into(next) => current = next,
        }
    }
    Classified::new(ErrorKind::Internal, current)
}

enum Step<'a> {
    Done(Classified),
    Into(&'a (dyn Error + 'static)),
}

fn step<'a>(error: &'a (dyn Error + 'static)) -> Step<'a> {
    if let Some(e) = error.downcast_ref::<DataFusionError>() {
        return datafusion_step(e);
    }
    if let Some(e) = error.downcast_ref::<std::sync::Arc<DataFusionError>>() {
        return datafusion_step(e.as_ref());
    }
    if let Some(e) = error.downcast_ref::<ArrowError>() {
        return arrow_step(e);
    }
    if let Some(e) = error.downcast_ref::<LendfusionError>() {
        return Step::Done(match e {
            LendfusionError::DataFusion(inner) => return Step::Into(inner),
            LendfusionError::BadFile { .. } => Classified::new(ErrorKind::BadFile, e),
            LendfusionError::TableNotFound(_) => Classified::new(ErrorKind::NotFound, e),
            LendfusionError::Storage(_) | LendfusionError::Cluster(_) => {
                Classified::new(ErrorKind::Unavailable, e)
            }
            LendfusionError::Config(_) => Classified::new(ErrorKind::Internal, e),
        });
    }
    if let Some(e) = error.downcast_ref::<BallistaError>() {
        return ballista_step(e);
    }
    if let Some(e) = error.downcast_ref::<Classified>() {
        return Step::Done(e.clone());
    }
    if error.is::<parquet::errors::ParquetError>() {
        return Step::Done(Classified::new(
            ErrorKind::BadFile,
            format!("Parquet error: {error}"),
        ));
    }
    if let Some(e) = error.downcast_ref::<object_store::Error>() {
        return Step::Done(object_store_error(e));
    }
    if error.is::<std::io::Error>() {
        return Step::Done(Classified::new(ErrorKind::Unavailable, error));
    }
    if let Some(status) = error.downcast_ref::<tonic::Status>() {
        let kind = KINDS
            .iter()
            .map(|(k, _)| *k)
            .find(|k| k.code() == status.code())
            .unwrap_or(ErrorKind::Unavailable);
        return Step::Done(Classified::new(kind, status.message()));
    }
    match error.source() {
        Some(source) => Step::Into(source),
        None => Step::Done(Classified::new(ErrorKind::Internal, error)),
    }
}

fn datafusion_step(e: &DataFusionError) -> Step<'_> {
    use DataFusionError as E;
    let done = |kind, message: &dyn std::fmt::Display| Step::Done(Classified::new(kind, message));
    match e {
        E::ArrowError(inner, _) => arrow_step(inner),
        E::External(inner) => Step::Into(inner.as_ref()),
        E::Shared(inner) => datafusion_step(inner.as_ref()),
        E::Context(_, inner) | E::Diagnostic(_, inner) => datafusion_step(inner.as_ref()),
        E::Collection(errors) => match errors.first() {
            Some(first) => datafusion_step(first),
            None => done(ErrorKind::Internal, e),
        },
        E::Execution(message) if message.contains(SCHEMA_MISMATCH) => {
            done(ErrorKind::BadFile, message)
        }
        // `exec_err!`: a function found a bad argument while it ran.
        E::Execution(message) => done(ErrorKind::InvalidArgument, message),
        E::ParquetError(_) => done(ErrorKind::BadFile, e),
        E::ObjectStore(inner) => Step::Done(object_store_error(inner)),
        E::IoError(_) => done(ErrorKind::Unavailable, e),
        E::ResourcesExhausted(_) => done(ErrorKind::ResourcesExhausted, e),
        E::Plan(message) if message.to_ascii_lowercase().contains("not found") => {
            let lower = message.to_ascii_lowercase();
            let kind = if lower.contains("table '") || lower.contains("table \"") {
                ErrorKind::NotFound
            } else {
                ErrorKind::InvalidArgument
            };
            done(kind, e)
        }
        E::SQL(..)
        | E::Plan(_)
        | E::SchemaError(..)
        | E::NotImplemented(_)
        | E::Configuration(_) => done(ErrorKind::InvalidArgument, e),
        E::Internal(_) | E::ExecutionJoin(_) | E::Substrait(_) | E::Ffi(_) => {
            done(ErrorKind::Internal, e)
        }
    }
}

fn arrow_step(e: &ArrowError) -> Step<'_> {
    use ArrowError as A;
    let kind = match e {
        A::ExternalError(inner) => return Step::Into(inner.as_ref()),
        A::DivideByZero
        | A::ArithmeticOverflow(_)
        | A::CastError(_)
        | A::ComputeError(_)
        | A::InvalidArgumentError(_)
        | A::ParseError(_)
        | A::NotYetImplemented(_) => ErrorKind::InvalidArgument,
        A::ParquetError(_) => ErrorKind::BadFile,
        A::IoError(..) => ErrorKind::Unavailable,
        A::MemoryError(_) => ErrorKind::ResourcesExhausted,
        _ => ErrorKind::Internal,
    };
    Step::Done(Classified::new(kind, e))
}

fn ballista_step(e: &BallistaError) -> Step<'_> {
    use BallistaError as B;
    let kind = match e {
        B::DataFusionError(inner) => return datafusion_step(inner),
        B::ArrowError(inner) => return arrow_step(inner),
        B::SqlError(_) | B::NotImplemented(_) => ErrorKind::InvalidArgument,
        B::IoError(_)
        | B::TonicError(_)
        | B::GrpcError(_)
        | B::GrpcConnectionError(_)
        | B::FetchFailed(..)
        | B::GrpcActionError(_) => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    };
    Step::Done(Classified::new(kind, e))
}

fn object_store_error(e: &object_store::Error) -> Classified {
    match e {
        object_store::Error::NotFound { .. } => Classified::new(ErrorKind::NotFound, e),
        _ => Classified::new(ErrorKind::Unavailable, format!("storage error: {e}")),
    }
}

/// Opens the classified error inside a text that may be formatted with `{:?}` on the way.
const OPEN: &str = "[lendfusion-error:";
/// Closes it.
const CLOSE: &str = "[/lendfusion-error]";

/// The classified error as text that survives Ballista's `{:?}` (any number of times): the
/// kind and the message between markers; characters that `{:?}` would escape are replaced.
pub fn tag(classified: &Classified) -> String {
    let message: String = classified
        .message
        .chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            // `{:?}` of a string leaves single quotes alone.
            '\'' => '\'',
            c if c.is_whitespace() => ' ',
            c if c.escape_debug().count() > 1 => '?',
            c => c,
        })
        .collect();
    format!("{OPEN}{}] {message} {CLOSE}", classified.kind.name())
}

/// The classified error a task's failure text carries, if it carries one.
pub fn untag(text: &str) -> Option<Classified> {
    let start = text.find(OPEN)? + OPEN.len();
    let rest = &text[start..];
    let (name, rest) = rest.split_once(']')?;
    let kind = KINDS.iter().find(|(_, n)| *n == name)?.0;
    let end = rest.find(CLOSE)?;
    Some(Classified::new(kind, &rest[..end]))
}

/// A failure text with no classified error in it (from a peer that does not tag, or an error
/// Ballista made itself), rid of the Rust debug wrappers: `DataFusionError(Shared(External(
/// ArrowError(DivideByZero))))` becomes `DivideByZero`; quotes and escapes are dropped.
pub fn without_debug_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // For each open parenthesis: whether its closing one is dropped too.
    let mut open: Vec<bool> = vec![];
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(word);
        word.clear();
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_alphanumeric() || c == '_' => word.push(c),
            '(' => {
                let wrapper = word.chars().next().is_some_and(char::is_uppercase);
                if wrapper {
                    word.clear();
                } else {
                    flush(&mut word, &mut out);
                    out.push('(');
                }
                open.push(wrapper);
            }
            ')' => {
                flush(&mut word, &mut out);
                if !open.pop().unwrap_or(false) {
                    out.push(')');
                }
            }
            '\\' => {
                flush(&mut word, &mut out);
                match chars.next() {
                    Some('n' | 't' | 'r') => out.push(' '),
                    Some('"' | '\\' | '\'') | None => {}
                    Some(other) => out.push(other),
                }
            }
            '"' => flush(&mut word, &mut out),
            c => {
                flush(&mut word, &mut out);
                out.push(c);
            }
        }
    }
    out.push_str(&word);
    let out = out.replace(", None", "").replace("Some ", "");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A task's error as the coordinator can read it. Ballista sends a failed task's error to the
/// scheduler formatted with `{:?}`; the error is classified here, where it has its type, and
/// travels as the kind and plain message between markers that survive that formatting
/// (this module). The errors the scheduler acts on stay what they are: a
/// lost shuffle partition and a cancelled task as Ballista's, an I/O error as an I/O error
/// (the scheduler runs the task again), its message classified.
pub fn task_error(e: DataFusionError) -> DataFusionError {
    match scheduler_kind(&e) {
        SchedulerKind::Ballista => e,
        SchedulerKind::Io(kind) => {
            DataFusionError::IoError(std::io::Error::new(kind, tag(&classify(&e))))
        }
        SchedulerKind::Failure => {
            DataFusionError::External(Box::new(BallistaError::General(tag(&classify(&e)))))
        }
    }
}

/// How Ballista's scheduler treats a task's error.
enum SchedulerKind {
    /// A shuffle fetch failure (the stage before runs again) or a cancellation.
    Ballista,
    /// An I/O error: the task runs again.
    Io(std::io::ErrorKind),
    /// The query fails.
    Failure,
}

/// What Ballista makes of `e` (`From<BallistaError> for FailedTask`), seeing through the
/// wrappers Ballista itself puts around errors.
fn scheduler_kind(e: &DataFusionError) -> SchedulerKind {
    let mut current = e;
    for _ in 0..16 {
        let root = current.find_root();
        if let DataFusionError::IoError(io) = root {
            return SchedulerKind::Io(io.kind());
        }
        let ballista = [current, root].into_iter().find_map(|e| match e {
            DataFusionError::External(inner) => inner.downcast_ref::<BallistaError>(),
            _ => None,
        });
        match ballista {
            Some(BallistaError::FetchFailed(..) | BallistaError::Cancelled) => {
                return SchedulerKind::Ballista;
            }
            Some(BallistaError::IoError(io)) => {
                return SchedulerKind::Io(io.kind());
            }
            Some(BallistaError::DataFusionError(inner)) => current = inner,
            _ => return SchedulerKind::Failure,
        }
    }
    SchedulerKind::Failure
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballista_core::serde::protobuf::FailedTask;
    use ballista_core::serde::protobuf::failed_task::FailedReason;
    use std::sync::Arc;

    #[test]
    fn the_root_of_a_chain_gives_kind_and_message() {
        let e = DataFusionError::Shared(Arc::new(DataFusionError::External(Box::new(
            DataFusionError::ArrowError(Box::new(ArrowError::DivideByZero), None),
        ))));
        let c = classify(&e);
        assert_eq!(c.kind, ErrorKind::InvalidArgument);
        assert_eq!(c.message, "Divide by zero error");

        let e = DataFusionError::Context(
            "while computing".into(),
            Box::new(DataFusionError::Execution("dcbs: bad breakpoints".into())),
        );
        assert_eq!(classify(&e).message, "dcbs: bad breakpoints");

        let e = DataFusionError::External(Box::new(LendfusionError::Storage("down".into())));
        assert_eq!(classify(&e).kind, ErrorKind::Unavailable);
        let e = DataFusionError::ParquetError(Box::new(parquet::errors::ParquetError::EOF(
            "eof".into(),
        )));
        assert_eq!(classify(&e).kind, ErrorKind::BadFile);
        let e = DataFusionError::ResourcesExhausted("no memory".into());
        assert_eq!(classify(&e).kind, ErrorKind::ResourcesExhausted);
    }

    #[test]
    fn a_tag_survives_debug_formatting() {
        let c = Classified::new(
            ErrorKind::InvalidArgument,
            "Cast error: Cannot cast string \"x\"\nto Int32 \\ 'ok'",
        );
        let once = format!("General({:?})", tag(&c));
        let twice = format!("Job failed: Stage 1 has failed 4 times, reason: {once:?}");
        for text in [tag(&c), once, twice] {
            let back = untag(&text).expect("tagged");
            assert_eq!(back.kind, ErrorKind::InvalidArgument);
            assert_eq!(
                back.message,
                "Cast error: Cannot cast string 'x' to Int32 / 'ok'"
            );
        }
        assert_eq!(untag("Task failed due to runtime execution error: X"), None);
    }

    #[test]
    fn debug_wrappers_are_dropped() {
        let text = "Job failed due to stage 1 failed: Task failed due to runtime execution error: \
                    DataFusionError(Shared(External(ArrowError(DivideByZero))))";
        assert_eq!(
            without_debug_text(text),
            "Job failed due to stage 1 failed: Task failed due to runtime execution error: \
             DivideByZero"
        );
        let text = r#"IoError(Custom { kind: Other, error: "disk (sda) full\n" }), None"#;
        assert_eq!(
            without_debug_text(text),
            "Custom { kind: Other, error: disk (sda) full }"
        );
    }

    /// What the scheduler receives for a task that failed with `e`.
    fn failed(e: DataFusionError) -> FailedTask {
        FailedTask::from(BallistaError::from(task_error(e)))
    }

    #[test]
    fn task_errors_reach_the_scheduler_classified() {
        let divide = DataFusionError::Shared(std::sync::Arc::new(DataFusionError::External(
            Box::new(ArrowError::DivideByZero),
        )));
        let task = failed(divide);
        assert!(matches!(
            task.failed_reason,
            Some(FailedReason::ExecutionError(_))
        ));
        let c = untag(&task.error).expect("classified");
        assert_eq!(c.kind, ErrorKind::InvalidArgument);
        assert_eq!(c.message, "Divide by zero error");

        // I/O stays retryable; Ballista's own errors stay structural.
        let io = DataFusionError::IoError(std::io::Error::other("disk full"));
        let task = failed(io);
        assert!(task.retryable, "{task:?}");
        assert!(
            untag(&task.error)
                .expect("classified")
                .message
                .contains("disk full")
        );
        // Wrapped by Ballista's shuffle writer, as a stage's errors arrive.
        let wrapped = BallistaError::DataFusionError(Box::new(DataFusionError::Execution(
            "dcbs: bad breakpoints".into(),
        )))
        .into_datafusion();
        let c = untag(&failed(wrapped).error).expect("classified");
        assert_eq!(c.message, "dcbs: bad breakpoints");
        let fetch = BallistaError::FetchFailed("w1".into(), 1, 2, "gone".into()).into_datafusion();
        let task = failed(fetch);
        assert!(matches!(
            task.failed_reason,
            Some(FailedReason::FetchPartitionError(_))
        ));
        let task = failed(BallistaError::Cancelled.into_datafusion());
        assert!(matches!(
            task.failed_reason,
            Some(FailedReason::TaskKilled(_))
        ));
    }
}
