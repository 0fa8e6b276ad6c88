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
//! same window expressions the same way, but as each input batch arrives it computes the
//! partitions the batch completes and emits them — the batch's own rows passed on without a
//! copy — carrying only the partition that may continue in the next batch. Each partition is
//! evaluated exactly as `WindowAggExec` evaluates it (same expressions, same slice of rows), so
//! the results are identical; memory is bounded by a batch plus the longest partition, and
//! batches downstream have the input's size. [`ChunkWindows`] puts it in place of every
//! `WindowAggExec` that has PARTITION BY keys (without keys the whole input is one partition
//! and nothing changes).

use std::collections::VecDeque;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use arrow::array::{Array, ArrayRef};
use arrow::compute::{concat, concat_batches};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
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

use super::replace_each;

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
        let window = super::with_children(&self.window, children, options)?;
        let chunked = Self::try_new(Arc::new(window)).ok_or_else(|| {
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
        self.replace_children(children, super::RECOMPUTE)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.window.input().execute(partition, context)?;
        Ok(Box::pin(ChunkedWindowStream {
            schema: self.schema(),
            input,
            window_expr: self.window_expr().to_vec(),
            partition_keys: self.window.partition_by_sort_keys()?,
            carry: vec![],
            ready: VecDeque::new(),
            metrics: BaselineMetrics::new(&self.metrics, partition),
            finished: false,
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Evaluates each input batch's complete partitions as the batch arrives.
///
/// The rows of the batch's complete partitions are passed on as they are (a slice of the
/// batch, no copy), with the window columns appended. The batch's last partition may continue
/// in the next batch, so its rows are carried; a carried partition is concatenated once it is
/// complete and evaluated on its own.
struct ChunkedWindowStream {
    schema: SchemaRef,
    input: SendableRecordBatchStream,
    window_expr: Vec<Arc<dyn WindowExpr>>,
    partition_keys: Vec<PhysicalSortExpr>,
    /// The rows of the partition that may continue in the next input batch.
    carry: Vec<RecordBatch>,
    /// Output ready to be sent.
    ready: VecDeque<RecordBatch>,
    metrics: BaselineMetrics,
    finished: bool,
}

impl ChunkedWindowStream {
    /// Where the partitions of `batch` begin and end.
    fn partitions(&self, batch: &RecordBatch) -> Result<Vec<Range<usize>>> {
        let keys = self
            .partition_keys
            .iter()
            .map(|key| key.evaluate_to_sort_column(batch))
            .collect::<Result<Vec<_>>>()?;
        evaluate_partition_ranges(batch.num_rows(), &keys)
    }

    /// Whether the first row of `batch` belongs to the carried partition.
    fn continues_carry(&self, batch: &RecordBatch) -> Result<bool> {
        let Some(last) = self.carry.last() else {
            return Ok(false);
        };
        let pair = concat_batches(
            &batch.schema(),
            &[last.slice(last.num_rows() - 1, 1), batch.slice(0, 1)],
        )?;
        Ok(self.partitions(&pair)?.len() == 1)
    }

    /// `rows` with the window columns of its `partitions` (which cover it) appended.
    fn evaluate(&self, rows: &RecordBatch, partitions: &[Range<usize>]) -> Result<RecordBatch> {
        let mut per_partition: Vec<Vec<ArrayRef>> = Vec::with_capacity(partitions.len());
        for range in partitions {
            let slice = rows.slice(range.start, range.len());
            per_partition.push(
                self.window_expr
                    .iter()
                    .map(|expr| expr.evaluate(&slice))
                    .collect::<Result<_>>()?,
            );
        }
        let mut columns = rows.columns().to_vec();
        for i in 0..self.window_expr.len() {
            let parts: Vec<&dyn Array> = per_partition.iter().map(|p| p[i].as_ref()).collect();
            columns.push(if parts.len() == 1 {
                Arc::clone(&per_partition[0][i])
            } else {
                concat(&parts)?
            });
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    /// Evaluate the carried partition, which is complete.
    fn flush_carry(&mut self) -> Result<()> {
        if self.carry.is_empty() {
            return Ok(());
        }
        let rows = concat_batches(&self.carry[0].schema(), &self.carry)?;
        self.carry.clear();
        let whole = Range {
            start: 0,
            end: rows.num_rows(),
        };
        let out = self.evaluate(&rows, std::slice::from_ref(&whole))?;
        self.ready.push_back(out);
        Ok(())
    }

    /// Take one input batch: queue the output of every partition it completes.
    fn push(&mut self, batch: RecordBatch) -> Result<()> {
        let elapsed = self.metrics.elapsed_compute().clone();
        let _timer = elapsed.timer();
        let ranges = self.partitions(&batch)?;
        let mut start = 0;
        if self.continues_carry(&batch)? {
            if ranges.len() == 1 {
                self.carry.push(batch);
                return Ok(());
            }
            start = ranges[0].end;
            self.carry.push(batch.slice(0, start));
        }
        self.flush_carry()?;
        let Some(open) = ranges.last().cloned() else {
            return Ok(());
        };
        if open.start > start {
            let complete: Vec<Range<usize>> = ranges
                .iter()
                .filter(|r| r.start >= start && r.end <= open.start)
                .map(|r| r.start - start..r.end - start)
                .collect();
            let rows = batch.slice(start, open.start - start);
            let out = self.evaluate(&rows, &complete)?;
            self.ready.push_back(out);
        }
        self.carry.push(batch.slice(open.start, open.len()));
        Ok(())
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<RecordBatch>>> {
        loop {
            if let Some(out) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(out)));
            }
            if self.finished {
                return Poll::Ready(None);
            }
            match ready!(self.input.poll_next_unpin(cx)) {
                Some(Ok(batch)) => {
                    if batch.num_rows() > 0
                        && let Err(e) = self.push(batch)
                    {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    self.finished = true;
                    let elapsed = self.metrics.elapsed_compute().clone();
                    let _timer = elapsed.timer();
                    if let Err(e) = self.flush_carry() {
                        return Poll::Ready(Some(Err(e)));
                    }
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
        replace_each(plan, ChunkedWindowExec::try_new)
    }

    fn name(&self) -> &str {
        "lendfusion_chunk_windows"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
