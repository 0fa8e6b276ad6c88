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
//! that sort in place; a cluster's workers run under a bounded memory pool and keep
//! DataFusion's spilling sort.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::compute::{concat_batches, interleave};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{LexOrdering, PhysicalExpr};
use datafusion::physical_expr_common::sort_expr::OrderingRequirements;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties,
    InputDistributionRequirements, PlanProperties,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::order_keys::{encodable, sorted_order};

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
        let reservation = MemoryConsumer::new(format!("KeySortExec[{partition}]"))
            .register(context.memory_pool());
        let run = Run {
            schema: self.schema(),
            expr: self.expr().clone(),
            batch_size: context.session_config().batch_size().max(1),
            metrics: BaselineMetrics::new(&self.metrics, partition),
            reservation,
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
    reservation: MemoryReservation,
}

impl Run {
    /// Buffer the whole input, order it, gather every output batch, and release the input.
    ///
    /// The output is gathered at once rather than as it is asked for: the operators after a
    /// sort (windows, the next sort) buffer their partition too, so holding the input until
    /// the last output batch leaves would hold the partition twice for longer.
    async fn sort(
        self,
        mut input: SendableRecordBatchStream,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let Self {
            schema,
            expr,
            batch_size,
            metrics,
            reservation,
        } = self;
        let mut batches = vec![];
        while let Some(batch) = input.next().await {
            let batch = batch?;
            if batch.num_rows() > 0 {
                reservation.try_grow(batch.get_array_memory_size())?;
                batches.push(batch);
            }
        }
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
        let sorted = order
            .chunks(batch_size)
            .map(|chunk| gather(&schema, &batches, chunk))
            .collect::<Result<Vec<_>>>()?;
        drop(batches);
        reservation.try_resize(sorted.iter().map(|b| b.get_array_memory_size()).sum())?;
        metrics.record_output(order.len());
        timer.done();
        // The reservation lives as long as the stream, like the batches it accounts for.
        Ok(futures::stream::iter(sorted)
            .map(move |batch| {
                let _ = &reservation;
                Ok(batch)
            })
            .boxed())
    }
}

/// One output batch: the rows at `positions` (batch, row) of `batches`.
fn gather(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    positions: &[(u32, u32)],
) -> Result<RecordBatch> {
    let positions: Vec<(usize, usize)> = positions
        .iter()
        .map(|(batch, row)| (*batch as usize, *row as usize))
        .collect();
    let columns = (0..schema.fields().len())
        .map(|i| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
            interleave(&arrays, &positions)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(positions.len()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
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
        if config.execution.sort_in_place_threshold_bytes < MIN_IN_PLACE_BYTES {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(sort) = node.downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(node));
            };
            Ok(match KeySortExec::try_new(Arc::new(sort.clone())) {
                Some(keyed) => Transformed::yes(Arc::new(keyed) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "lendfusion_sort_by_keys"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
