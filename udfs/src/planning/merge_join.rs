//! Equi-joins whose build side arrives sorted by the join keys, merged instead of hashed.
//!
//! A partitioned `HashJoinExec` builds a hash table of its whole left (build) partition and
//! probes it with every right row: hashing both sides' keys, growing the table, and a random
//! read of the table per probe row. In the factor panel (`lending JOIN market ON date AND
//! security_id`) that was the largest single operator after the cross-sections. There, both
//! inputs are read partition-aligned (`lendfusion_core::aligned_join`): each partition reads its
//! months in order, and SPEC's files hold their rows in `(date, security_id)` order, so each
//! build partition already arrives sorted by the join keys.
//!
//! [`MergeJoinExec`] stands in for such a join. Per partition it buffers the left input (as the
//! hash join does), concatenates it, and checks in one pass whether it is sorted by the keys —
//! date-typed keys first, then the others in the join's order, ascending, NULLs first. When it
//! is, each right row finds its matching left rows by a search that starts where the previous
//! row's matches ended (galloping forward, binary search backward): one or two key comparisons
//! per row when the right input is sorted too, `O(log n)` when it is not. The output keeps the
//! right input's order, with each right row's matches in left order — the order the hash join
//! emits, which is what its declared properties (the probe side's order) promise. Output rows
//! matched one to one over a stretch of the left (every row of both tables has its partner)
//! take the left's columns as slices, without a copy. When the left
//! is not sorted, the buffered partition and the right input go to DataFusion's hash join
//! unchanged (the metric `partitions_hashed` counts them), so no input is ever wrong, only
//! slower.
//!
//! It takes inner joins without a join filter, `NULL`s never equal, keys of integer, date, time,
//! timestamp, boolean, string or binary types (the same type on both sides: floats are left to
//! the hash join, whose equality of NaNs and signed zeros this does not reproduce), no `fetch`,
//! and no dynamic filter (none of the probe side's scans waits for one). [`MergeJoins`] puts it
//! in place of such a partitioned join whose inputs both read a data source directly, through
//! filters and projections only (repartitioned or shuffled rows arrive in no useful order), in
//! embedded sessions; a cluster's workers do it to each task's plan ([`with_merge_joins`]).

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, DynComparator, RecordBatch, RecordBatchOptions, StringArray,
    StringViewArray, UInt32Array, make_comparator,
};
use arrow::buffer::NullBuffer;
use arrow::compute::{SortOptions, concat_batches, take};
use arrow::datatypes::{DataType, Date32Type, Int32Type, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinType, NullEquality, Result};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::ReplaceChildrenOptions;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::StreamingTableExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::Replay;
use super::key_sort::sorts_in_place;
use super::order_keys::encodable;

/// A partitioned inner equi-join that merges when its build side arrives sorted (see the
/// module).
#[derive(Debug)]
pub struct MergeJoinExec {
    /// The join it stands for: schema, properties and the fallback come from it.
    join: Arc<HashJoinExec>,
    /// The join keys (indices into `join.on()`) in the order the left must be sorted by.
    key_order: Vec<usize>,
    metrics: ExecutionPlanMetricsSet,
}

impl MergeJoinExec {
    /// Merge like `join`; `None` when it is not a hash join this operator takes (see the
    /// module).
    pub fn try_new(plan: &Arc<dyn ExecutionPlan>) -> Option<Self> {
        let join = plan.downcast_ref::<HashJoinExec>()?;
        let takes = *join.partition_mode() == PartitionMode::Partitioned
            && *join.join_type() == JoinType::Inner
            && join.filter().is_none()
            && join.null_equality() == NullEquality::NullEqualsNothing
            && !join.null_aware
            && join.fetch().is_none()
            && join.dynamic_expressions_produced().is_empty()
            && !join.on().is_empty();
        if !takes {
            return None;
        }
        let (left, right) = (join.left().schema(), join.right().schema());
        let mut types = Vec::with_capacity(join.on().len());
        for (l, r) in join.on() {
            let (l, r) = (l.data_type(&left).ok()?, r.data_type(&right).ok()?);
            if l != r || !mergeable(&l) {
                return None;
            }
            types.push(l);
        }
        let dated = |t: &DataType| {
            matches!(
                t,
                DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
            )
        };
        let mut key_order: Vec<usize> = (0..types.len()).collect();
        key_order.sort_by_key(|&k| !dated(&types[k]));
        Some(Self {
            join: Arc::new(join.builder().build().ok()?),
            key_order,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

/// Key types whose equality is that of the hash join: those with order codes (see
/// [`encodable`]) but floats (NaN and ±0).
fn mergeable(data_type: &DataType) -> bool {
    encodable(data_type) && !matches!(data_type, DataType::Float32 | DataType::Float64)
}

impl DisplayAs for MergeJoinExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "MergeJoinExec: ")?;
        let on = self
            .join
            .on()
            .iter()
            .map(|(l, r)| format!("({l}, {r})"))
            .collect::<Vec<_>>()
            .join(", ");
        match t {
            DisplayFormatType::TreeRender => write!(f, "on={on}"),
            _ => write!(f, "mode=Partitioned, join_type=Inner, on=[{on}]"),
        }
    }
}

impl ExecutionPlan for MergeJoinExec {
    fn name(&self) -> &'static str {
        "MergeJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.join.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.join.left(), self.join.right()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.join.apply_expressions(f)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        self.join.maintains_input_order()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.join.input_distribution_requirements()
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let join = Arc::clone(&self.join).replace_children(children, options)?;
        Ok(match Self::try_new(&join) {
            Some(merged) => Arc::new(merged),
            None => join,
        })
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, super::RECOMPUTE)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let left = self.join.left().execute(partition, Arc::clone(&context))?;
        let right = self.join.right().execute(partition, Arc::clone(&context))?;
        let reservation = MemoryConsumer::new(format!("MergeJoinExec[{partition}]"))
            .register(context.memory_pool());
        let run = Run {
            join: Arc::clone(&self.join),
            key_order: self.key_order.clone(),
            batch_size: context.session_config().batch_size().max(1),
            metrics: BaselineMetrics::new(&self.metrics, partition),
            hashed: MetricBuilder::new(&self.metrics).counter(HASHED_METRIC, partition),
            reservation,
            context,
        };
        let joined = futures::stream::once(run.join(left, right)).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            joined,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Name of [`MergeJoinExec`]'s metric counting partitions whose left input was not sorted by
/// the keys and went to the hash join.
pub const HASHED_METRIC: &str = "partitions_hashed";

/// One partition to join.
struct Run {
    join: Arc<HashJoinExec>,
    key_order: Vec<usize>,
    batch_size: usize,
    metrics: BaselineMetrics,
    hashed: Count,
    reservation: MemoryReservation,
    context: Arc<TaskContext>,
}

impl Run {
    /// Buffer the left, then merge the right against it, or hand both to the hash join.
    async fn join(
        self,
        mut left: SendableRecordBatchStream,
        right: SendableRecordBatchStream,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let mut batches = vec![];
        while let Some(batch) = left.next().await {
            let batch = batch?;
            if batch.num_rows() > 0 {
                self.reservation.try_grow(batch.get_array_memory_size())?;
                batches.push(batch);
            }
        }
        let timer = self.metrics.elapsed_compute().timer();
        let left = concat_batches(&self.join.left().schema(), &batches)?;
        drop(batches);
        self.reservation.resize(left.get_array_memory_size());
        if left.num_rows() == 0 {
            // An inner join with nothing on the left: nothing to read on the right.
            return Ok(futures::stream::empty().boxed());
        }
        let left_keys = self
            .key_order
            .iter()
            .map(|&k| {
                self.join.on()[k]
                    .0
                    .evaluate(&left)?
                    .into_array(left.num_rows())
            })
            .collect::<Result<Vec<_>>>()?;
        // Output rows are gathered by 32-bit positions.
        let sorted = left.num_rows() <= u32::MAX as usize && is_sorted(&left_keys)?;
        timer.done();
        if !sorted {
            return self.hash_join(left, right);
        }
        let width = left.num_columns() + self.join.right().schema().fields().len();
        let projection = match &self.join.projection {
            Some(projection) => projection.to_vec(),
            None => (0..width).collect(),
        };
        let mut probe = Probe {
            run: self,
            left,
            left_keys,
            projection,
            next: 0,
        };
        Ok(right
            .map(move |batch| probe.joined(&batch?))
            .map_ok(|batches| futures::stream::iter(batches.into_iter().map(Ok)))
            .try_flatten()
            .boxed())
    }

    /// The partition through DataFusion's hash join: the buffered left, the right as it comes.
    fn hash_join(
        self,
        left: RecordBatch,
        right: SendableRecordBatchStream,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        // The hash join accounts for its build side itself.
        self.reservation.free();
        self.hashed.add(1);
        let left_schema = left.schema();
        let left = futures::stream::iter([Ok(left)]);
        let left = Replay::new(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&left_schema),
            left,
        )));
        let left = StreamingTableExec::try_new(left_schema, vec![left], None, [], false, None)?;
        let right_schema = right.schema();
        let right = StreamingTableExec::try_new(
            right_schema,
            vec![Replay::new(right)],
            None,
            [],
            false,
            None,
        )?;
        let join = self
            .join
            .builder()
            .with_new_children(vec![Arc::new(left), Arc::new(right)])?
            .reset_state()
            .recompute_properties()
            .build_exec()?;
        let metrics = self.metrics;
        Ok(join
            .execute(0, self.context)?
            .map(move |batch| {
                if let Ok(batch) = &batch {
                    metrics.record_output(batch.num_rows());
                }
                batch
            })
            .boxed())
    }
}

/// One join key's column on two sides, compared row against row: directly for null-free
/// dates, 32-bit integers and strings (the factor panel's keys), by Arrow's dynamic comparator
/// (ascending, NULLs first) otherwise.
enum KeyPair<'a> {
    Int32(&'a [i32], &'a [i32]),
    Utf8View(&'a StringViewArray, &'a StringViewArray),
    Utf8(&'a StringArray, &'a StringArray),
    Dynamic(DynComparator),
}

impl<'a> KeyPair<'a> {
    fn new(left: &'a dyn Array, right: &'a dyn Array) -> Result<Self> {
        let direct = left.null_count() == 0
            && right.null_count() == 0
            && left.data_type() == right.data_type();
        Ok(match left.data_type() {
            DataType::Date32 if direct => Self::Int32(
                left.as_primitive::<Date32Type>().values(),
                right.as_primitive::<Date32Type>().values(),
            ),
            DataType::Int32 if direct => Self::Int32(
                left.as_primitive::<Int32Type>().values(),
                right.as_primitive::<Int32Type>().values(),
            ),
            DataType::Utf8View if direct => {
                Self::Utf8View(left.as_string_view(), right.as_string_view())
            }
            DataType::Utf8 if direct => Self::Utf8(left.as_string(), right.as_string()),
            _ => Self::Dynamic(make_comparator(left, right, SortOptions::default())?),
        })
    }

    fn compare(&self, i: usize, j: usize) -> Ordering {
        match self {
            Self::Int32(l, r) => l[i].cmp(&r[j]),
            Self::Utf8View(l, r) => {
                let (a, b) = (l.views()[i], r.views()[j]);
                let (a_len, b_len) = (a as u32, b as u32);
                if a_len <= INLINE_VIEW_BYTES && b_len <= INLINE_VIEW_BYTES {
                    // Both held in the view: the bytes after the length, zero-padded, read as a
                    // big-endian number order as the strings do; then the shorter one first.
                    let (a_bytes, b_bytes) = ((a >> 32).swap_bytes(), (b >> 32).swap_bytes());
                    a_bytes.cmp(&b_bytes).then(a_len.cmp(&b_len))
                } else {
                    compare_bytes(l.value(i).as_bytes(), r.value(j).as_bytes())
                }
            }
            Self::Utf8(l, r) => compare_bytes(l.value(i).as_bytes(), r.value(j).as_bytes()),
            Self::Dynamic(compare) => compare(i, j),
        }
    }
}

/// Byte-wise order of two strings: the first eight bytes of each, zero-padded, as big-endian
/// numbers (no call into `memcmp` for the short keys joins mostly have), then the rest.
fn compare_bytes(a: &[u8], b: &[u8]) -> Ordering {
    fn prefix(bytes: &[u8]) -> u64 {
        match bytes.first_chunk::<8>() {
            Some(eight) => u64::from_be_bytes(*eight),
            None => {
                let mut padded = [0u8; 8];
                for (to, from) in padded.iter_mut().zip(bytes) {
                    *to = *from;
                }
                u64::from_be_bytes(padded)
            }
        }
    }
    match prefix(a).cmp(&prefix(b)) {
        Ordering::Equal if a.len() <= 8 || b.len() <= 8 => a.len().cmp(&b.len()),
        Ordering::Equal => a[8..].cmp(&b[8..]),
        unequal => unequal,
    }
}

/// The longest string a `Utf8View` view holds itself (longer ones point into a buffer).
const INLINE_VIEW_BYTES: u32 = 12;

/// Comparison of row `i` of one side's keys with row `j` of the other's, key by key.
fn compare(keys: &[KeyPair], i: usize, j: usize) -> Ordering {
    for key in keys {
        match key.compare(i, j) {
            Ordering::Equal => continue,
            unequal => return unequal,
        }
    }
    Ordering::Equal
}

/// The key pairs of `left` against `right`.
fn key_pairs<'a>(left: &'a [ArrayRef], right: &'a [ArrayRef]) -> Result<Vec<KeyPair<'a>>> {
    left.iter()
        .zip(right)
        .map(|(l, r)| KeyPair::new(l.as_ref(), r.as_ref()))
        .collect()
}

/// Whether the rows are in ascending key order, NULLs first (each key after the previous).
fn is_sorted(keys: &[ArrayRef]) -> Result<bool> {
    let pairs = key_pairs(keys, keys)?;
    let rows = keys.first().map_or(0, |k| k.len());
    Ok((1..rows).all(|i| compare(&pairs, i - 1, i) != Ordering::Greater))
}

/// The sorted left of a partition, probed by the right's batches in turn.
struct Probe {
    run: Run,
    left: RecordBatch,
    left_keys: Vec<ArrayRef>,
    /// The join's output columns, as positions in the left's columns then the right's.
    projection: Vec<usize>,
    /// Where the previous right row's matches ended (the next search starts there).
    next: usize,
}

impl Probe {
    /// The join of one right batch with the left: its rows in order, each with its matches.
    fn joined(&mut self, right: &RecordBatch) -> Result<Vec<RecordBatch>> {
        let timer = self.run.metrics.elapsed_compute().timer();
        let right_keys = self
            .run
            .key_order
            .iter()
            .map(|&k| {
                self.run.join.on()[k]
                    .1
                    .evaluate(right)?
                    .into_array(right.num_rows())
            })
            .collect::<Result<Vec<_>>>()?;
        let pairs = key_pairs(&self.left_keys, &right_keys)?;
        let valid = right_keys
            .iter()
            .fold(None, |nulls: Option<NullBuffer>, key| {
                NullBuffer::union(nulls.as_ref(), key.logical_nulls().as_ref())
            });
        let rows = self.left.num_rows();
        let mut left_rows: Vec<u32> = Vec::with_capacity(right.num_rows());
        let mut right_rows: Vec<u32> = Vec::with_capacity(right.num_rows());
        for j in 0..right.num_rows() {
            if valid.as_ref().is_some_and(|v| v.is_null(j)) {
                continue;
            }
            let order = |i: usize| compare(&pairs, i, j);
            let first = first_not_below(order, self.next, rows);
            let mut end = first;
            while end < rows && order(end) == Ordering::Equal {
                left_rows.push(end as u32);
                right_rows.push(j as u32);
                end += 1;
            }
            self.next = end;
        }
        let batches = self.output(right, &left_rows, &right_rows);
        self.run.metrics.record_output(left_rows.len());
        timer.done();
        batches
    }

    /// The output rows `(left_rows[k], right_rows[k])`, in batches of the session's size, with
    /// the join's projection applied.
    fn output(
        &self,
        right: &RecordBatch,
        left_rows: &[u32],
        right_rows: &[u32],
    ) -> Result<Vec<RecordBatch>> {
        let schema: SchemaRef = self.run.join.schema();
        let left_width = self.left.num_columns();
        let mut batches = vec![];
        for (left_rows, right_rows) in left_rows
            .chunks(self.run.batch_size)
            .zip(right_rows.chunks(self.run.batch_size))
        {
            // Rows matched one to one over a stretch of the left (the panel's case: every
            // `lending` row has its `market` row) are a slice of it: no copy.
            let left_start = left_rows.first().map_or(0, |&i| i as usize);
            let left_contiguous = left_rows
                .iter()
                .enumerate()
                .all(|(k, &i)| i as usize == left_start + k);
            let left_rows = UInt32Array::from(left_rows.to_vec());
            let right_unchanged = right_rows.len() == right.num_rows()
                && right_rows.iter().enumerate().all(|(k, &j)| j as usize == k);
            let right_rows = UInt32Array::from(right_rows.to_vec());
            let columns = self
                .projection
                .iter()
                .map(|&c| -> Result<ArrayRef> {
                    Ok(if c < left_width && left_contiguous {
                        self.left.column(c).slice(left_start, left_rows.len())
                    } else if c < left_width {
                        take(self.left.column(c).as_ref(), &left_rows, None)?
                    } else if right_unchanged {
                        Arc::clone(right.column(c - left_width))
                    } else {
                        take(right.column(c - left_width).as_ref(), &right_rows, None)?
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let options = RecordBatchOptions::new().with_row_count(Some(left_rows.len()));
            batches.push(RecordBatch::try_new_with_options(
                Arc::clone(&schema),
                columns,
                &options,
            )?);
        }
        Ok(batches)
    }
}

/// The first row of a sorted run of `rows` whose `order` (row against the sought key) is not
/// `Less`, searched from `from`: galloping forward when the key is past `from - 1`, by binary
/// search below `from` when it is not.
fn first_not_below(order: impl Fn(usize) -> Ordering, from: usize, rows: usize) -> usize {
    let (mut low, mut high) = if from > 0 && order(from - 1) != Ordering::Less {
        // Row `from - 1` is not below the key: the first such row is at or before it.
        (0, from - 1)
    } else {
        // Every row before `from` is below the key.
        let mut low = from;
        let mut step = 1;
        loop {
            let probe = low + step - 1;
            if probe >= rows {
                break (low, rows);
            }
            if order(probe) == Ordering::Less {
                low = probe + 1;
                step *= 2;
            } else {
                break (low, probe);
            }
        }
    };
    // Rows before `low` are below the key; row `high` (if any) is not.
    while low < high {
        let middle = low + (high - low) / 2;
        if order(middle) == Ordering::Less {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

/// Replaces every hash join [`MergeJoinExec`] takes whose inputs read a data source directly, in
/// sessions that sort partitions in one piece (the embedded ones, as for
/// [`SortByKeys`](super::key_sort::SortByKeys); a coordinator's plans keep DataFusion's joins,
/// which its workers replace themselves).
#[derive(Debug, Default)]
pub struct MergeJoins;

impl PhysicalOptimizerRule for MergeJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !sorts_in_place(config) {
            return Ok(plan);
        }
        with_merge_joins(plan)
    }

    fn name(&self) -> &str {
        "lendfusion_merge_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` with every hash join [`MergeJoinExec`] takes whose inputs both read their source
/// directly, replaced by one.
pub fn with_merge_joins(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(join) = node.downcast_ref::<HashJoinExec>() else {
            return Ok(Transformed::no(node));
        };
        if !(reads_source(join.left()) && reads_source(join.right())) {
            return Ok(Transformed::no(node));
        }
        Ok(match MergeJoinExec::try_new(&node) {
            Some(merged) => Transformed::yes(Arc::new(merged) as Arc<dyn ExecutionPlan>),
            None => Transformed::no(node),
        })
    })
    .data()
}

/// Whether `input` is a data source (files, memory) under filters and projections only: rows
/// in the order they are stored, the only order a build side can be expected to arrive in
/// sorted. A repartition, a shuffle read or an aggregate delivers its rows in no such order.
fn reads_source(input: &Arc<dyn ExecutionPlan>) -> bool {
    if input.downcast_ref::<DataSourceExec>().is_some() {
        return true;
    }
    let passes_rows = input.downcast_ref::<FilterExec>().is_some()
        || input.downcast_ref::<ProjectionExec>().is_some();
    match input.children()[..] {
        [child] if passes_rows => reads_source(child),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_string_comparison_is_byte_order() {
        let words: [&[u8]; 14] = [
            b"",
            b"\0",
            b"a",
            b"a\0",
            b"ab",
            b"ab\0\0\0\0\0\0",
            b"ab\0\0\0\0\0\0x",
            b"LF000001",
            b"LF000002",
            b"LF0000010",
            b"LF00000\xff",
            b"\xff",
            b"abcdefghij",
            b"abcdefghik",
        ];
        for a in words {
            for b in words {
                assert_eq!(compare_bytes(a, b), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    /// The first row not below `key` in `rows`, searched from every start, is the partition
    /// point, over runs with duplicates, keys before, between and after every row.
    #[test]
    fn searches_from_any_start_find_the_first_row_not_below() {
        let rows = [1, 3, 3, 3, 5, 8, 8, 13, 21, 21, 21, 21, 34];
        for key in 0..40 {
            let expected = rows.partition_point(|&r| r < key);
            for from in 0..=rows.len() {
                let found = first_not_below(|i| rows[i].cmp(&key), from, rows.len());
                assert_eq!(found, expected, "key {key} from {from}");
            }
        }
        assert_eq!(first_not_below(|_| Ordering::Less, 0, 0), 0);
    }

    /// Strings held in their views and in buffers, prefixes, embedded NULs, 12 and 13 bytes,
    /// multi-byte characters: the direct comparison of views orders them as `str` does.
    #[test]
    fn string_views_compare_as_strings() {
        let words = [
            "",
            "\0",
            "a",
            "a\0",
            "ab",
            "b",
            "abcdefghijkl",
            "abcdefghijk\0",
            "abcdefghijkl\0",
            "abcdefghijklm",
            "abcdefghijklmnopqrstuvwxyz",
            "é",
            "\u{7f}",
            "LF000123",
            "LF000124",
        ];
        let views = StringViewArray::from_iter_values(words);
        let pair = KeyPair::new(&views, &views).expect("pair");
        assert!(matches!(pair, KeyPair::Utf8View(..)));
        for (i, a) in words.iter().enumerate() {
            for (j, b) in words.iter().enumerate() {
                assert_eq!(pair.compare(i, j), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }
}
