//! Sorts of a whole partition by packed integer keys.
//!
//! An embedded session sorts each partition in one piece (its `sort_in_place_threshold_bytes`
//! is 1 GiB, see `lendfusion_core::session`). DataFusion's `SortExec` then concatenates the
//! partition, orders it with `lexsort_to_indices` — a comparison sort calling one dynamic
//! comparator per column per comparison, byte comparisons for a string key — and takes every
//! output batch at once. In the factor-panel job those sorts were a quarter of the CPU.
//!
//! [`KeySortExec`] produces the same order from one integer key per row (see
//! [`order_keys`](super::order_keys)): it buffers the partition's batches as they are, orders
//! them by a radix sort on the keys, gathers the output batches from the buffered batches (so
//! the partition is not concatenated first) and releases the input. Ties keep their input order
//! (DataFusion's sort leaves them in any order). [`SortByKeys`] puts it in place of every
//! `SortExec` without a `fetch` (TopK stays DataFusion's) whose keys have codes, in sessions
//! that sort in place; a cluster's workers put it into each task's plan themselves
//! ([`with_key_sorts`]). It accounts for the partition twice (input and gathered output) in
//! the memory pool; when a bounded pool (a worker's) refuses, the partition goes to
//! DataFusion's `SortExec`, which spills to disk. A partition that arrives in order (its keys
//! never decrease: a cluster's join stage sorting scans read in the order they were written)
//! skips the radix passes and the gather and is passed on as it came (metric
//! `partitions_in_order`).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::compute::{concat_batches, interleave};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{LexOrdering, PhysicalExpr};
use datafusion::physical_expr_common::sort_expr::OrderingRequirements;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::StreamingTableExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties,
    InputDistributionRequirements, PlanProperties,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::order_keys::{encodable, sorted_order};
use super::{Replay, replace_each};

/// Sessions whose in-place sort threshold is at least this sort partitions in one piece, and
/// get [`KeySortExec`].
pub const MIN_IN_PLACE_BYTES: usize = 256 << 20;

/// Beyond this many input batches a partition is concatenated before it is sorted.
const MAX_GATHERED_BATCHES: usize = 1024;

/// A `SortExec` (no `fetch`) whose partitions are ordered by packed integer keys.
#[derive(Debug)]
pub struct KeySortExec {
    /// The operator it replaces: schema, ordering and requirements come from it.
    sort: Arc<SortExec>,
    cache: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl KeySortExec {
    /// Sort like `sort`; `None` when it has a `fetch`, merges partitions, or sorts on a type
    /// without codes.
    pub fn try_new(sort: Arc<SortExec>) -> Option<Self> {
        let input = sort.input();
        let merges =
            !sort.preserve_partitioning() && input.output_partitioning().partition_count() > 1;
        if sort.fetch().is_some() || merges {
            return None;
        }
        let schema = input.schema();
        for key in sort.expr().iter() {
            if !encodable(&key.expr.data_type(&schema).ok()?) {
                return None;
            }
        }
        Some(Self {
            cache: Arc::clone(sort.properties()),
            sort,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The sort keys.
    pub fn expr(&self) -> &LexOrdering {
        self.sort.expr()
    }
}

impl DisplayAs for KeySortExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "KeySortExec: ")?;
        match t {
            DisplayFormatType::TreeRender => write!(f, "sort keys=[{}]", self.expr()),
            _ => write!(
                f,
                "expr=[{}], preserve_partitioning=[{}]",
                self.expr(),
                self.sort.preserve_partitioning()
            ),
        }
    }
}

impl ExecutionPlan for KeySortExec {
    fn name(&self) -> &'static str {
        "KeySortExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.cache
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.sort.input()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.sort.apply_expressions(f)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        self.sort.maintains_input_order()
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        self.sort.required_input_ordering()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.sort.input_distribution_requirements()
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let sort = Arc::new(super::with_children(&self.sort, children, options)?);
        // A new input the keys cannot take (other types, partitions to merge) keeps
        // DataFusion's sort.
        let Some(keyed) = Self::try_new(Arc::clone(&sort)) else {
            return Ok(sort);
        };
        Ok(Arc::new(match options.children_properties {
            ChildrenPropertiesMode::Keep => Self {
                cache: Arc::clone(&self.cache),
                ..keyed
            },
            ChildrenPropertiesMode::Recompute => keyed,
        }))
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
        let input = self.sort.input().execute(partition, Arc::clone(&context))?;
        if self
            .sort
            .input()
            .equivalence_properties()
            .ordering_satisfy(self.expr().clone())?
        {
            return Ok(input);
        }
        // Spillable: under a fair pool (a worker's) it gets its share, and past it the
        // partition goes to DataFusion's spilling sort.
        let reservation = MemoryConsumer::new(format!("KeySortExec[{partition}]"))
            .with_can_spill(true)
            .register(context.memory_pool());
        let run = Run {
            schema: self.schema(),
            expr: self.expr().clone(),
            batch_size: context.session_config().batch_size().max(1),
            metrics: BaselineMetrics::new(&self.metrics, partition),
            spilled: MetricBuilder::new(&self.metrics).counter(SPILLED_METRIC, partition),
            in_order: MetricBuilder::new(&self.metrics).counter(IN_ORDER_METRIC, partition),
            reservation,
            context,
        };
        let schema = self.schema();
        let sorted = futures::stream::once(run.sort(input)).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, sorted)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One partition to sort.
struct Run {
    schema: SchemaRef,
    expr: LexOrdering,
    batch_size: usize,
    metrics: BaselineMetrics,
    /// Partitions handed to DataFusion's spilling sort (0 or 1).
    spilled: Count,
    /// Partitions that arrived in order and were passed on as they came (0 or 1).
    in_order: Count,
    reservation: MemoryReservation,
    context: Arc<TaskContext>,
}

impl Run {
    /// Buffer the whole input, order it, gather every output batch, and release the input.
    ///
    /// The output is gathered at once rather than as it is asked for: the operators after a
    /// sort (windows, the next sort) buffer their partition too, so holding the input until
    /// the last output batch leaves would hold the partition twice for longer.
    ///
    /// The partition is accounted for twice (the gather writes a copy before the input is
    /// released). When the memory pool refuses either, the batches buffered so far and the
    /// rest of the input go to DataFusion's `SortExec` instead, which sorts what fits and
    /// spills the rest to disk: the same order (ties may differ), without the memory.
    async fn sort(
        self,
        mut input: SendableRecordBatchStream,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let mut batches = vec![];
        while let Some(batch) = input.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            let refused = self
                .reservation
                .try_grow(batch.get_array_memory_size())
                .is_err();
            batches.push(batch);
            if refused {
                return self.spill(batches, input);
            }
        }
        if self.reservation.try_grow(self.reservation.size()).is_err() {
            return self.spill(batches, input);
        }
        let Self {
            schema,
            expr,
            batch_size,
            metrics,
            in_order,
            reservation,
            ..
        } = self;
        let elapsed = metrics.elapsed_compute().clone();
        let timer = elapsed.timer();
        if batches.len() > MAX_GATHERED_BATCHES {
            // Each output batch is gathered across all of them: tiny input batches are
            // concatenated once first (as DataFusion's sort does with every partition).
            batches = vec![concat_batches(&schema, &batches)?];
        }
        let mut columns: Vec<Vec<ArrayRef>> = vec![Vec::new(); expr.len()];
        for batch in &batches {
            for (key, column) in expr.iter().zip(columns.iter_mut()) {
                column.push(key.expr.evaluate(batch)?.into_array(batch.num_rows())?);
            }
        }
        let options: Vec<_> = expr.iter().map(|key| key.options).collect();
        let order = sorted_order(&columns, &options)?;
        drop(columns);
        let rows = batches.iter().map(|batch| batch.num_rows()).sum();
        let sorted = match order {
            Some(order) => {
                let sorted = gather(&schema, &batches, &order, batch_size)?;
                drop(batches);
                sorted
            }
            None => {
                in_order.add(1);
                batches
            }
        };
        // What the output holds (already allocated: accounted for, not asked for).
        reservation.resize(sorted.iter().map(|b| b.get_array_memory_size()).sum());
        metrics.record_output(rows);
        timer.done();
        // The reservation lives as long as the stream, like the batches it accounts for.
        Ok(futures::stream::iter(sorted)
            .map(move |batch| {
                let _ = &reservation;
                Ok(batch)
            })
            .boxed())
    }

    /// The partition (`buffered`, then the rest of `input`) sorted by DataFusion's spilling
    /// sort. Our reservation is released first: the sort accounts for each batch as it takes
    /// it, and spills what does not fit.
    fn spill(
        self,
        buffered: Vec<RecordBatch>,
        input: SendableRecordBatchStream,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let Self {
            schema,
            expr,
            metrics,
            spilled,
            reservation,
            context,
            ..
        } = self;
        reservation.free();
        spilled.add(1);
        let replayed = futures::stream::iter(buffered.into_iter().map(Ok)).chain(input);
        let source = Replay::new(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&schema),
            replayed,
        )));
        let source = StreamingTableExec::try_new(schema, vec![source], None, [], false, None)?;
        let sort = SortExec::new(expr, Arc::new(source));
        let sorted = sort.execute(0, context)?;
        Ok(sorted
            .map(move |batch| {
                if let Ok(batch) = &batch {
                    metrics.record_output(batch.num_rows());
                }
                batch
            })
            .boxed())
    }
}

/// Name of [`KeySortExec`]'s metric counting partitions sorted by DataFusion's spilling sort
/// because the memory pool refused the in-memory sort.
pub const SPILLED_METRIC: &str = "partitions_to_spilling_sort";

/// Name of [`KeySortExec`]'s metric counting partitions that arrived sorted and were passed on
/// without a gather.
pub const IN_ORDER_METRIC: &str = "partitions_in_order";

/// The output batches (`batch_size` rows each): the rows at `positions` (batch, row) of
/// `batches`.
///
/// Column by column: each output value is a read from a random row of its partition, and
/// gathering one column over the whole output keeps that column's source (a few MB) in the
/// caches and the TLB, where gathering every column of one output batch at a time cycles
/// through all of them.
fn gather(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    positions: &[(u32, u32)],
    batch_size: usize,
) -> Result<Vec<RecordBatch>> {
    let positions: Vec<(usize, usize)> = positions
        .iter()
        .map(|(batch, row)| (*batch as usize, *row as usize))
        .collect();
    let chunks: Vec<&[(usize, usize)]> = positions.chunks(batch_size).collect();
    let mut columns: Vec<Vec<ArrayRef>> =
        vec![Vec::with_capacity(schema.fields().len()); chunks.len()];
    for i in 0..schema.fields().len() {
        let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
        for (chunk, output) in chunks.iter().zip(columns.iter_mut()) {
            output.push(interleave(&arrays, chunk)?);
        }
    }
    chunks
        .iter()
        .zip(columns)
        .map(|(chunk, columns)| {
            let options = RecordBatchOptions::new().with_row_count(Some(chunk.len()));
            Ok(RecordBatch::try_new_with_options(
                Arc::clone(schema),
                columns,
                &options,
            )?)
        })
        .collect()
}

/// Whether the session sorts partitions in one piece (`sort_in_place_threshold_bytes` ≥
/// [`MIN_IN_PLACE_BYTES`]): the embedded sessions, whose plan rewrites a cluster's workers make
/// themselves instead.
pub(crate) fn sorts_in_place(config: &ConfigOptions) -> bool {
    config.execution.sort_in_place_threshold_bytes >= MIN_IN_PLACE_BYTES
}

/// Replaces every `SortExec` [`KeySortExec`] can take, in sessions that sort partitions in one
/// piece (`sort_in_place_threshold_bytes` ≥ [`MIN_IN_PLACE_BYTES`]). Runs after DataFusion's
/// rules, so the sorts are where they end up.
#[derive(Debug, Default)]
pub struct SortByKeys;

impl PhysicalOptimizerRule for SortByKeys {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !sorts_in_place(config) {
            return Ok(plan);
        }
        with_key_sorts(plan)
    }

    fn name(&self) -> &str {
        "lendfusion_sort_by_keys"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` with every `SortExec` [`KeySortExec`] can take replaced by one, whatever the
/// session's sort settings: what [`SortByKeys`] does in sessions that sort in one piece, and
/// what a cluster's workers do to each task's plan (under their bounded memory, a partition
/// that does not fit goes to DataFusion's spilling sort, see [`KeySortExec`]).
pub fn with_key_sorts(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    replace_each(plan, KeySortExec::try_new)
}
