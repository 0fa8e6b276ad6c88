//! Merging sorted partitions whose rows are split by a prefix of the sort keys.
//!
//! `ORDER BY date, security_id` over a plan that partitions by `date` (a window
//! `PARTITION BY date`, a join on `date`) ends in DataFusion's `SortPreservingMergeExec`: a
//! loser tree that compares the heads of every partition for each output row and gathers the
//! output rows one by one from the partitions' batches. In the factor-panel job that merge was
//! a single thread's 0.4 s and 2 % of the job's CPU in its gathers.
//!
//! When the input is hash-partitioned on expressions that all lie in the first `k` sort keys,
//! every run of rows equal on those `k` keys (one date) sits in one partition, in one
//! contiguous stretch of it (each partition is sorted). The merged order is then the runs in
//! the order of their keys, and no two partitions' runs ever interleave. [`RunMergeExec`]
//! compares the partitions' heads once per run, not once per row, and passes each run on as a
//! slice of the batch it came in (no copy). [`MergeRuns`] puts it in place of every
//! `SortPreservingMergeExec` without a `fetch` whose input is partitioned that way, in sessions
//! that sort partitions in one piece (embedded). A cluster's planner cuts a stage at
//! DataFusion's merge, so the coordinator's plans keep it; the workers put [`RunMergeExec`] in
//! its place in the last stage's task ([`with_run_merges`]), where the merge reads the sorted
//! partitions back from the shuffle with the partitioning they were written with.

use std::cmp::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow::compute::BatchCoalescer;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_err};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{LexOrdering, Partitioning, PhysicalExpr};
use datafusion::physical_expr_common::sort_expr::OrderingRequirements;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::common::spawn_buffered;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::sorts::streaming_merge::StreamingMergeBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties,
    InputDistributionRequirements, PlanProperties,
};
use futures::StreamExt;

use super::key_sort::sorts_in_place;
use super::replace_each;

/// A `SortPreservingMergeExec` (no `fetch`) whose input partitions hold disjoint runs of the
/// first [`RunMergeExec::run_keys`] sort keys, merged run by run.
#[derive(Debug)]
pub struct RunMergeExec {
    /// The operator it replaces: schema, ordering and requirements come from it.
    merge: Arc<SortPreservingMergeExec>,
    /// How many leading sort keys the input's hash partitioning covers.
    run_keys: usize,
    cache: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl RunMergeExec {
    /// Merge like `merge`; `None` when it has a `fetch`, its input is not hash-partitioned on
    /// expressions among the leading sort keys, or those keys have a type whose equal values
    /// might not hash alike.
    pub fn try_new(merge: Arc<SortPreservingMergeExec>) -> Option<Self> {
        if merge.fetch().is_some() {
            return None;
        }
        let input = merge.input();
        let Partitioning::Hash(hashed, partitions) = input.output_partitioning() else {
            return None;
        };
        if *partitions < 2 || hashed.is_empty() {
            return None;
        }
        let keys = merge.expr();
        let run_keys = (1..=keys.len()).find(|&k| {
            hashed
                .iter()
                .all(|h| keys.iter().take(k).any(|key| key.expr.eq(h)))
        })?;
        let schema = input.schema();
        for key in keys.iter().take(run_keys) {
            if !run_key_type(&key.expr.data_type(&schema).ok()?) {
                return None;
            }
        }
        Some(Self {
            cache: Arc::clone(merge.properties()),
            merge,
            run_keys,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The sort keys.
    pub fn expr(&self) -> &LexOrdering {
        self.merge.expr()
    }

    /// How many leading sort keys make a run (all of the input's hash keys are among them).
    pub fn run_keys(&self) -> usize {
        self.run_keys
    }
}

/// Types whose equal values are equal bit for bit (so hash alike) and whose row encoding is
/// equal exactly when the values are: integers, dates and times, strings, booleans.
fn run_key_type(data_type: &DataType) -> bool {
    data_type.is_integer()
        || data_type.is_temporal()
        || matches!(
            data_type,
            DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
}

impl DisplayAs for RunMergeExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "RunMergeExec: ")?;
        match t {
            DisplayFormatType::TreeRender => write!(f, "sort keys=[{}]", self.expr()),
            _ => write!(f, "[{}], run_keys={}", self.expr(), self.run_keys),
        }
    }
}

impl ExecutionPlan for RunMergeExec {
    fn name(&self) -> &'static str {
        "RunMergeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.cache
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.merge.input()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.merge.apply_expressions(f)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        self.merge.maintains_input_order()
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        self.merge.required_input_ordering()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.merge.input_distribution_requirements()
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        self.merge.benefits_from_input_partitioning()
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let merge = Arc::new(super::with_children(&self.merge, children, options)?);
        // An input partitioned otherwise keeps DataFusion's merge.
        let Some(runs) = Self::try_new(Arc::clone(&merge)) else {
            return Ok(merge);
        };
        Ok(Arc::new(match options.children_properties {
            ChildrenPropertiesMode::Keep => Self {
                cache: Arc::clone(&self.cache),
                ..runs
            },
            ChildrenPropertiesMode::Recompute => runs,
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
        if partition != 0 {
            return internal_err!("RunMergeExec has one partition, not {partition}");
        }
        let input = self.merge.input();
        let schema = input.schema();
        let run_keys: Vec<_> = self.expr().iter().take(self.run_keys).cloned().collect();
        let fields = run_keys
            .iter()
            .map(|key| {
                let data_type = key.expr.data_type(&schema)?;
                Ok(SortField::new_with_options(data_type, key.options))
            })
            .collect::<Result<Vec<_>>>()?;
        // Each partition runs in its own task, one batch ahead (as DataFusion's merge does).
        let inputs = (0..input.output_partitioning().partition_count())
            .map(|i| {
                let stream = input.execute(i, Arc::clone(&context))?;
                Ok(Head::new(spawn_buffered(stream, 1)))
            })
            .collect::<Result<Vec<_>>>()?;
        let batch_size = context.session_config().batch_size().max(1);
        // Short runs (a run key with few rows, or a run cut by its batch's end) are copied
        // into batches of the session's size; runs of half a batch or more pass as they are.
        let coalescer = BatchCoalescer::new(self.schema(), batch_size)
            .with_biggest_coalesce_batch_size(Some(batch_size / 2));
        let runs = Runs {
            converter: RowConverter::new(fields)?,
            coalescer,
            run_keys,
            inputs,
            runs: 0,
            rows: 0,
            probed: false,
            handed_over: MetricBuilder::new(&self.metrics).counter(HANDED_OVER_METRIC, partition),
            metrics: BaselineMetrics::new(&self.metrics, partition),
        };
        let handover = Handover {
            expr: self.expr().clone(),
            batch_size,
            context,
        };
        let output = futures::stream::try_unfold(
            (Merging::Runs(Box::new(runs)), handover),
            |(mut merging, handover)| async move {
                loop {
                    match merging {
                        Merging::Runs(mut runs) => match runs.step().await? {
                            Step::Batch(batch) => {
                                return Ok(Some((batch, (Merging::Runs(runs), handover))));
                            }
                            Step::End => return Ok(None),
                            Step::HandOver => merging = runs.hand_over(&handover)?,
                        },
                        Merging::Rows(mut stream) => {
                            let Some(batch) = stream.next().await.transpose()? else {
                                return Ok(None);
                            };
                            return Ok(Some((batch, (Merging::Rows(stream), handover))));
                        }
                    }
                }
            },
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            output,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Runs shorter than this on average (over the first [`PROBE_RUNS`]) go to DataFusion's
/// row-by-row merge instead: a run costs a comparison per partition, a slice and a copy into
/// the output, which a row of the loser tree beats when runs are a row or two.
const MIN_MEAN_RUN_ROWS: usize = 64;

/// The metric counting merges handed over to DataFusion's merge (runs too short).
pub const HANDED_OVER_METRIC: &str = "merges_handed_over";

/// How many runs are merged before their mean length is judged.
const PROBE_RUNS: usize = 32;

/// The merge so far: run by run, or (runs too short) row by row by DataFusion's merge.
enum Merging {
    Runs(Box<Runs>),
    Rows(SendableRecordBatchStream),
}

/// What a step of the run-by-run merge came to.
enum Step {
    Batch(RecordBatch),
    End,
    HandOver,
}

/// What DataFusion's merge needs to take over.
struct Handover {
    expr: LexOrdering,
    batch_size: usize,
    context: Arc<TaskContext>,
}

/// One input partition and where its unread rows begin.
struct Head {
    stream: SendableRecordBatchStream,
    /// The current batch (rows from `start` on unread) and its run keys in row format; `None`
    /// once the stream needs polling.
    current: Option<(RecordBatch, Rows)>,
    start: usize,
    done: bool,
}

impl Head {
    fn new(stream: SendableRecordBatchStream) -> Self {
        Self {
            stream,
            current: None,
            start: 0,
            done: false,
        }
    }
}

/// The merge of one query: every partition's head, the run keys and their row encoding.
struct Runs {
    converter: RowConverter,
    run_keys: Vec<datafusion::physical_expr::PhysicalSortExpr>,
    inputs: Vec<Head>,
    coalescer: BatchCoalescer,
    /// Runs and rows merged so far, and whether their mean length has been judged.
    runs: usize,
    rows: usize,
    probed: bool,
    /// Merges handed over to DataFusion's (0 or 1).
    handed_over: Count,
    metrics: BaselineMetrics,
}

impl Runs {
    /// The rest of the merge by DataFusion's merge, after the rows merged so far: every unread
    /// row's run key is greater than those already merged (runs leave in key order), so the
    /// unread rows of every partition merged row by row follow them.
    fn hand_over(mut self: Box<Self>, handover: &Handover) -> Result<Merging> {
        self.handed_over.add(1);
        self.coalescer.finish_buffered_batch()?;
        let mut merged = vec![];
        while let Some(batch) = self.coalescer.next_completed_batch() {
            self.metrics.record_output(batch.num_rows());
            merged.push(Ok(batch));
        }
        let schema = self.coalescer.schema();
        let streams = std::mem::take(&mut self.inputs)
            .into_iter()
            .map(|head| {
                let unread = head
                    .current
                    .map(|(batch, _)| batch.slice(head.start, batch.num_rows() - head.start));
                let rest = futures::stream::iter(unread.map(Ok)).chain(head.stream);
                Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), rest))
                    as SendableRecordBatchStream
            })
            .collect();
        let reservation =
            MemoryConsumer::new("RunMergeExec[0]").register(handover.context.memory_pool());
        let rows = StreamingMergeBuilder::new()
            .with_streams(streams)
            .with_schema(Arc::clone(&schema))
            .with_expressions(&handover.expr)
            .with_metrics(self.metrics.clone())
            .with_batch_size(handover.batch_size)
            .with_reservation(reservation)
            .build()?;
        let all = futures::stream::iter(merged).chain(rows);
        Ok(Merging::Rows(Box::pin(RecordBatchStreamAdapter::new(
            schema, all,
        ))))
    }

    /// The next output batch, or the end, or (once, after [`PROBE_RUNS`] runs shorter than
    /// [`MIN_MEAN_RUN_ROWS`] on average) a call to hand over to DataFusion's merge.
    async fn step(&mut self) -> Result<Step> {
        loop {
            if let Some(batch) = self.coalescer.next_completed_batch() {
                self.metrics.record_output(batch.num_rows());
                return Ok(Step::Batch(batch));
            }
            if !self.probed && self.runs >= PROBE_RUNS {
                self.probed = true;
                if self.rows < self.runs * MIN_MEAN_RUN_ROWS {
                    return Ok(Step::HandOver);
                }
            }
            let Some(run) = self.next_run().await? else {
                self.coalescer.finish_buffered_batch()?;
                return Ok(match self.coalescer.next_completed_batch() {
                    Some(batch) => {
                        self.metrics.record_output(batch.num_rows());
                        Step::Batch(batch)
                    }
                    None => Step::End,
                });
            };
            let _timer = self.metrics.elapsed_compute().timer();
            self.coalescer.push_batch(run)?;
        }
    }

    /// The next run (or the part of it in one batch) in key order; `None` at the end.
    async fn next_run(&mut self) -> Result<Option<RecordBatch>> {
        self.fill().await?;
        let elapsed = self.metrics.elapsed_compute().clone();
        let _timer = elapsed.timer();
        let mut first: Option<usize> = None;
        for (i, head) in self.inputs.iter().enumerate() {
            let Some((_, rows)) = &head.current else {
                continue;
            };
            let smaller = match first {
                None => true,
                Some(f) => {
                    let Some((_, best)) = &self.inputs[f].current else {
                        return internal_err!("RunMergeExec lost a head");
                    };
                    rows.row(head.start).cmp(&best.row(self.inputs[f].start)) == Ordering::Less
                }
            };
            if smaller {
                first = Some(i);
            }
        }
        let Some(first) = first else {
            return Ok(None);
        };
        let head = &mut self.inputs[first];
        let Some((batch, rows)) = &head.current else {
            return internal_err!("RunMergeExec lost a head");
        };
        let end = run_end(rows, head.start);
        self.runs += 1;
        self.rows += end - head.start;
        let run = batch.slice(head.start, end - head.start);
        head.start = end;
        if end == batch.num_rows() {
            head.current = None;
        }
        Ok(Some(run))
    }

    /// Poll every input that has no unread rows until each has some or has ended. The inputs
    /// are polled together, as DataFusion's merge polls them: on a current-thread runtime
    /// `spawn_buffered` runs nothing in tasks of its own, and one input may make progress only
    /// while another is polled (waiting on one alone can hang the query).
    async fn fill(&mut self) -> Result<()> {
        futures::future::poll_fn(|cx| {
            let mut waiting = false;
            for i in 0..self.inputs.len() {
                match self.poll_head(i, cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => waiting = true,
                }
            }
            if waiting {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        })
        .await
    }

    /// Poll input `i` until it has unread rows or has ended.
    fn poll_head(&mut self, i: usize, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let head = &mut self.inputs[i];
        while head.current.is_none() && !head.done {
            let batch = match head.stream.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    head.done = true;
                    break;
                }
                Poll::Ready(Some(batch)) => batch?,
            };
            if batch.num_rows() == 0 {
                continue;
            }
            let _timer = self.metrics.elapsed_compute().timer();
            let columns = self
                .run_keys
                .iter()
                .map(|key| key.expr.evaluate(&batch)?.into_array(batch.num_rows()))
                .collect::<Result<Vec<_>>>()?;
            let rows = self.converter.convert_columns(&columns)?;
            head.current = Some((batch, rows));
            head.start = 0;
        }
        Poll::Ready(Ok(()))
    }
}

/// Where the run that begins at row `start` of `rows` ends: the first row after it with a
/// greater key (the batch is sorted, so a binary search).
fn run_end(rows: &Rows, start: usize) -> usize {
    let key = rows.row(start);
    let (mut low, mut high) = (start + 1, rows.num_rows());
    while low < high {
        let middle = low + (high - low) / 2;
        if rows.row(middle) == key {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

/// Replaces every `SortPreservingMergeExec` [`RunMergeExec`] can take, in sessions that sort
/// partitions in one piece (embedded; see the module docs). Runs after DataFusion's rules.
#[derive(Debug, Default)]
pub struct MergeRuns;

impl PhysicalOptimizerRule for MergeRuns {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !sorts_in_place(config) {
            return Ok(plan);
        }
        with_run_merges(plan)
    }

    fn name(&self) -> &str {
        "lendfusion_merge_runs"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` with every `SortPreservingMergeExec` [`RunMergeExec`] can take replaced by one: what
/// [`MergeRuns`] does in embedded sessions, and what a cluster's workers do to the stage that
/// merges the sorted partitions a shuffle reader brings (its input keeps the partitioning the
/// stage before wrote: each date's rows in one partition).
pub fn with_run_merges(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    replace_each(plan, RunMergeExec::try_new)
}
