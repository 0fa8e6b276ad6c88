//! Window functions evaluated a run of whole partitions at a time.
//!
//! DataFusion evaluates window functions that need a whole partition (ours, and a sliding
//! `AVG` next to them) in `WindowAggExec`, which buffers its entire input — every window
//! partition of its hash partition, 2.5 M rows at 20 M panel rows — concatenates it into one
//! batch, and emits that batch whole. Every operator after it then works on 20 MB columns,
//! which costs more per row the larger the panel (caches missed, fresh pages faulted in).
//!
//! Its input is sorted on the PARTITION BY keys, so each window partition is a contiguous run
//! of rows and the functions see one partition at a time. [`ChunkedWindowExec`] evaluates the
//! same window expressions the same way, but as soon as it holds a batch's worth of rows it
//! computes every partition that is complete and emits them, keeping only the partition that
//! may continue in the next input batch. Each partition is evaluated exactly as
//! `WindowAggExec` evaluates it (same expressions, same slice of rows), so the results are
//! identical; memory is bounded by a batch plus the longest partition, and batches downstream
//! have the normal size. [`ChunkWindows`] puts it in place of every `WindowAggExec` that has
//! PARTITION BY keys (without keys the whole input is one partition and nothing changes).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use arrow::array::ArrayRef;
use arrow::compute::{concat, concat_batches};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::utils::evaluate_partition_ranges;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_expr_common::sort_expr::OrderingRequirements;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{
    ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::windows::WindowAggExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
    WindowExpr,
};
use futures::{Stream, StreamExt};

/// A `WindowAggExec` over input sorted on its PARTITION BY keys, evaluated and emitted a run of
/// complete partitions at a time.
#[derive(Debug)]
pub struct ChunkedWindowExec {
    /// The operator it replaces: schema, requirements and the window expressions come from it.
    window: Arc<WindowAggExec>,
    cache: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl ChunkedWindowExec {
    /// Chunk `window`'s evaluation; `None` when it has no PARTITION BY keys.
    pub fn try_new(window: Arc<WindowAggExec>) -> Option<Self> {
        if window.window_expr().first()?.partition_by().is_empty() {
            return None;
        }
        let properties = window
            .properties()
            .as_ref()
            .clone()
            .with_emission_type(EmissionType::Incremental);
        Some(Self {
            window,
            cache: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// Build it from its parts (the plan codec's decoder).
    pub fn from_parts(
        window_expr: Vec<Arc<dyn WindowExpr>>,
        input: Arc<dyn ExecutionPlan>,
        can_repartition: bool,
    ) -> Result<Self> {
        let window = WindowAggExec::try_new(window_expr, input, can_repartition)?;
        Self::try_new(Arc::new(window)).ok_or_else(|| {
            datafusion::common::DataFusionError::Plan(
                "a chunked window needs PARTITION BY keys".into(),
            )
        })
    }

    /// The window expressions, all over the same PARTITION BY keys.
    pub fn window_expr(&self) -> &[Arc<dyn WindowExpr>] {
        self.window.window_expr()
    }

    /// The input, sorted on the PARTITION BY keys.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        self.window.input()
    }

    /// The keys the input is hash-partitioned on (none when it is one partition).
    pub fn partition_keys(&self) -> Vec<Arc<dyn PhysicalExpr>> {
        self.window.partition_keys()
    }
}

impl DisplayAs for ChunkedWindowExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "ChunkedWindowExec: ")?;
        let names: Vec<&str> = self.window_expr().iter().map(|e| e.name()).collect();
        match t {
            DisplayFormatType::TreeRender => write!(f, "select_list={}", names.join(", ")),
            _ => write!(f, "wdw=[{}]", names.join(", ")),
        }
    }
}

impl ExecutionPlan for ChunkedWindowExec {
    fn name(&self) -> &'static str {
        "ChunkedWindowExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.cache
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.window.input()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.window.apply_expressions(f)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        self.window.required_input_ordering()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.window.input_distribution_requirements()
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let window = Arc::clone(&self.window).replace_children(children, options)?;
        let Some(window) = window.downcast_ref::<WindowAggExec>() else {
            return datafusion::common::internal_err!("a window operator changed its kind");
        };
        let chunked = Self::try_new(Arc::new(window.clone())).ok_or_else(|| {
            datafusion::common::DataFusionError::Internal("window lost its keys".into())
        })?;
        Ok(Arc::new(match options.children_properties {
            ChildrenPropertiesMode::Keep => Self {
                cache: Arc::clone(&self.cache),
                ..chunked
            },
            ChildrenPropertiesMode::Recompute => chunked,
        }))
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions {
                children_properties: ChildrenPropertiesMode::Recompute,
            },
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let chunk_rows = context.session_config().batch_size().max(1);
        let input = self.window.input().execute(partition, context)?;
        Ok(Box::pin(ChunkedWindowStream {
            schema: self.schema(),
            input,
            window_expr: self.window_expr().to_vec(),
            partition_keys: self.window.partition_by_sort_keys()?,
            pending: vec![],
            pending_rows: 0,
            chunk_rows,
            metrics: BaselineMetrics::new(&self.metrics, partition),
            finished: false,
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Buffers input batches until it holds `chunk_rows` rows, then emits every complete partition.
struct ChunkedWindowStream {
    schema: SchemaRef,
    input: SendableRecordBatchStream,
    window_expr: Vec<Arc<dyn WindowExpr>>,
    partition_keys: Vec<PhysicalSortExpr>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    chunk_rows: usize,
    metrics: BaselineMetrics,
    finished: bool,
}

impl ChunkedWindowStream {
    /// Evaluate the complete partitions held (all of them at the end of the input).
    fn emit(&mut self, end_of_input: bool) -> Result<Option<RecordBatch>> {
        let _timer = self.metrics.elapsed_compute().timer();
        let batch = match self.pending.len() {
            0 => return Ok(None),
            1 => self.pending.pop().unwrap_or_else(|| unreachable!()),
            _ => concat_batches(&self.pending[0].schema(), &self.pending)?,
        };
        self.pending.clear();
        self.pending_rows = 0;
        let keys = self
            .partition_keys
            .iter()
            .map(|key| key.evaluate_to_sort_column(&batch))
            .collect::<Result<Vec<_>>>()?;
        let mut ranges = evaluate_partition_ranges(batch.num_rows(), &keys)?;
        if !end_of_input {
            // The last partition may go on in the next input batch: keep it.
            let Some(last) = ranges.pop() else {
                return Ok(None);
            };
            if last.start == 0 {
                self.pending_rows = batch.num_rows();
                self.pending.push(batch);
                return Ok(None);
            }
            self.pending_rows = last.len();
            self.pending.push(batch.slice(last.start, last.len()));
        }
        let Some(done) = ranges.last().map(|r| r.end) else {
            return Ok(None);
        };
        let mut per_partition: Vec<Vec<ArrayRef>> = Vec::with_capacity(ranges.len());
        for range in &ranges {
            let slice = batch.slice(range.start, range.len());
            per_partition.push(
                self.window_expr
                    .iter()
                    .map(|expr| expr.evaluate(&slice))
                    .collect::<Result<_>>()?,
            );
        }
        let mut columns = batch.slice(0, done).columns().to_vec();
        for i in 0..self.window_expr.len() {
            let parts: Vec<&dyn arrow::array::Array> =
                per_partition.iter().map(|p| p[i].as_ref()).collect();
            columns.push(concat(&parts)?);
        }
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&self.schema),
            columns,
        )?))
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<RecordBatch>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        loop {
            match ready!(self.input.poll_next_unpin(cx)) {
                Some(Ok(batch)) => {
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    self.pending_rows += batch.num_rows();
                    self.pending.push(batch);
                    if self.pending_rows >= self.chunk_rows
                        && let Some(out) = self.emit(false).transpose()
                    {
                        return Poll::Ready(Some(out));
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    self.finished = true;
                    return Poll::Ready(self.emit(true).transpose());
                }
            }
        }
    }
}

impl Stream for ChunkedWindowStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let poll = self.poll_inner(cx);
        self.metrics.record_poll(poll)
    }
}

impl RecordBatchStream for ChunkedWindowStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// Replaces every `WindowAggExec` with PARTITION BY keys by a [`ChunkedWindowExec`]. Runs after
/// DataFusion's rules, so the sorts and repartitions it relies on are in place.
#[derive(Debug, Default)]
pub struct ChunkWindows;

impl PhysicalOptimizerRule for ChunkWindows {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(window) = node.downcast_ref::<WindowAggExec>() else {
                return Ok(Transformed::no(node));
            };
            Ok(match ChunkedWindowExec::try_new(Arc::new(window.clone())) {
                Some(chunked) => Transformed::yes(Arc::new(chunked) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "lendfusion_chunk_windows"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
