//! The factor-panel job's IC series, computed while the panel streams to its file.
//!
//! `factor_panel_ic.sql` is `spearman_ic(composite, fwd21)` per date over the panel. The panel
//! arrives sorted by date, so each date's rows are contiguous: [`IcSeries`] keeps the current
//! date's valid pairs and closes the date with the same [`spearman`] the aggregate uses when
//! the next date starts. [`IcTeeExec`] feeds it from the plan that writes `panel.parquet`, so
//! the IC costs no second read of the file.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Schema};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, exec_err, internal_err};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;
use lendfusion_udfs::evaluation::spearman_ic::{push_pairs, spearman};

/// `spearman_ic(composite, fwd21)` per date of a panel that arrives sorted by date.
#[derive(Debug, Default)]
pub struct IcSeries {
    dates: Vec<Option<i32>>,
    ics: Vec<Option<f64>>,
    /// The date being collected (`Some(None)`: the rows with a NULL date).
    current: Option<Option<i32>>,
    /// Its pairs where both sides are valid and finite (as `spearman_ic` takes them).
    factor: Vec<f64>,
    fwd: Vec<f64>,
    /// Whether `date` may be NULL in the output (as the panel declares it).
    date_not_null: bool,
}

impl IcSeries {
    /// An empty series for a panel of this schema (its `date` field's nullability carries over,
    /// as it would through `GROUP BY date`).
    pub fn for_panel(schema: &Schema) -> Self {
        let date_not_null = schema
            .field_with_name("date")
            .is_ok_and(|field| !field.is_nullable());
        Self {
            date_not_null,
            ..Self::default()
        }
    }

    /// Take one batch of the panel (columns `date`, `composite`, `fwd21`).
    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let column = |name: &str| -> Result<&ArrayRef> {
            match batch.column_by_name(name) {
                Some(column) => Ok(column),
                None => exec_err!("the factor panel has no column {name}"),
            }
        };
        let (Some(dates), Some(factor), Some(fwd)) = (
            column("date")?.as_primitive_opt::<Date32Type>(),
            column("composite")?.as_primitive_opt::<Float64Type>(),
            column("fwd21")?.as_primitive_opt::<Float64Type>(),
        ) else {
            return exec_err!("the factor panel's date, composite and fwd21 are not DATE, DOUBLE");
        };
        let mut start = 0;
        while start < dates.len() {
            let date = dates.is_valid(start).then(|| dates.value(start));
            let end = run_end(dates, start, date);
            if self.current != Some(date) {
                self.close_date();
                self.current = Some(date);
            }
            self.add_pairs(factor, fwd, start, end);
            start = end;
        }
        Ok(())
    }

    fn add_pairs(&mut self, factor: &Float64Array, fwd: &Float64Array, start: usize, end: usize) {
        for i in start..end {
            push_pairs(factor, fwd, i, &mut self.factor, &mut self.fwd);
        }
    }

    fn close_date(&mut self) {
        if let Some(date) = self.current.take() {
            self.dates.push(date);
            self.ics.push(spearman(&self.factor, &self.fwd));
            self.factor.clear();
            self.fwd.clear();
        }
    }

    /// The series as `ic.parquet` holds it: (date, ic), one row per date, in date order.
    pub fn finish(mut self) -> Result<RecordBatch> {
        self.close_date();
        let schema = Schema::new(vec![
            Field::new("date", DataType::Date32, !self.date_not_null),
            Field::new("ic", DataType::Float64, true),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Date32Array::from(self.dates)),
            Arc::new(Float64Array::from(self.ics)),
        ];
        Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
    }
}

/// The end of the run of rows from `start` that have `date`.
fn run_end(dates: &Date32Array, start: usize, date: Option<i32>) -> usize {
    let mut end = start + 1;
    while end < dates.len() && dates.is_valid(end).then(|| dates.value(end)) == date {
        end += 1;
    }
    end
}

/// The series a tee fills, shared with whoever reads it after the plan has run.
pub type SharedSeries = Arc<Mutex<IcSeries>>;

/// Passes its one sorted input partition through unchanged and feeds every batch to an
/// [`IcSeries`].
#[derive(Debug)]
pub struct IcTeeExec {
    input: Arc<dyn ExecutionPlan>,
    series: SharedSeries,
}

impl IcTeeExec {
    /// `plan` (a sink over the sorted panel) with the tee under it, and the series it fills;
    /// `None` if `plan` is not one node over one partition.
    pub fn under(
        plan: &Arc<dyn ExecutionPlan>,
    ) -> Result<Option<(Arc<dyn ExecutionPlan>, SharedSeries)>> {
        let [input] = plan.children()[..] else {
            return Ok(None);
        };
        if input.output_partitioning().partition_count() != 1 {
            return Ok(None);
        }
        let series = Arc::new(Mutex::new(IcSeries::for_panel(&input.schema())));
        let tee: Arc<dyn ExecutionPlan> = Arc::new(Self {
            input: Arc::clone(input),
            series: Arc::clone(&series),
        });
        let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep);
        Ok(Some((
            Arc::clone(plan).replace_children(vec![tee], options)?,
            series,
        )))
    }
}

impl DisplayAs for IcTeeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "IcTeeExec: spearman_ic(composite, fwd21) per date")
    }
}

impl ExecutionPlan for IcTeeExec {
    fn name(&self) -> &'static str {
        "IcTeeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return internal_err!("IcTeeExec has one input, not {}", children.len());
        }
        Ok(Arc::new(Self {
            input: children.swap_remove(0),
            series: Arc::clone(&self.series),
        }))
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("IcTeeExec has one partition, not {partition}");
        }
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let series = Arc::clone(&self.series);
        let stream = input.map(move |batch| {
            let batch = batch?;
            match series.lock() {
                Ok(mut series) => series.push(&batch)?,
                Err(_) => return exec_err!("the IC series was poisoned by a panic"),
            }
            Ok(batch)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(
        dates: Vec<Option<i32>>,
        factor: Vec<Option<f64>>,
        fwd: Vec<Option<f64>>,
    ) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("date", DataType::Date32, true),
            Field::new("composite", DataType::Float64, true),
            Field::new("fwd21", DataType::Float64, true),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Date32Array::from(dates)),
            Arc::new(Float64Array::from(factor)),
            Arc::new(Float64Array::from(fwd)),
        ];
        RecordBatch::try_new(Arc::new(schema), columns).expect("batch")
    }

    fn series(batches: &[RecordBatch]) -> Vec<(Option<i32>, Option<f64>)> {
        let mut series = IcSeries::default();
        for b in batches {
            series.push(b).expect("push");
        }
        let out = series.finish().expect("finish");
        let (dates, ics) = (
            out.column(0).as_primitive::<Date32Type>(),
            out.column(1).as_primitive::<Float64Type>(),
        );
        (0..out.num_rows())
            .map(|i| {
                (
                    dates.is_valid(i).then(|| dates.value(i)),
                    ics.is_valid(i).then(|| ics.value(i)),
                )
            })
            .collect()
    }

    #[test]
    fn one_row_per_date_across_batch_ends_with_the_aggregates_rules() {
        let batches = [
            batch(
                vec![Some(1), Some(1), Some(1), Some(1), Some(2)],
                vec![Some(1.0), Some(2.0), Some(3.0), Some(f64::NAN), Some(1.0)],
                vec![Some(3.0), Some(1.0), Some(2.0), Some(9.0), Some(1.0)],
            ),
            // Date 2 goes on; NULL and infinite values are not pairs; two pairs are too few.
            batch(
                vec![Some(2), Some(2), Some(3), Some(3), Some(3)],
                vec![None, Some(2.0), Some(1.0), Some(2.0), Some(f64::INFINITY)],
                vec![Some(5.0), Some(2.0), Some(1.0), Some(1.0), Some(1.0)],
            ),
            batch(
                vec![Some(3), None, None, None],
                vec![Some(3.0), Some(1.0), Some(2.0), Some(3.0)],
                vec![Some(1.0), Some(1.0), Some(2.0), Some(3.0)],
            ),
            batch(vec![], vec![], vec![]),
        ];
        let got = series(&batches);
        assert_eq!(got.len(), 4);
        assert_eq!(
            got[0],
            (Some(1), spearman(&[1.0, 2.0, 3.0], &[3.0, 1.0, 2.0]))
        );
        assert!(got[0].1.is_some());
        // Date 2 has two pairs: NULL.
        assert_eq!(got[1], (Some(2), None));
        // Date 3: fwd21 has no variance among its pairs: NULL.
        assert_eq!(got[2], (Some(3), None));
        assert_eq!(got[3], (None, Some(1.0)));
    }

    #[test]
    fn batch_cuts_do_not_change_the_series() {
        let dates: Vec<Option<i32>> = (0..40).map(|i| Some(i / 7)).collect();
        let factor: Vec<Option<f64>> = (0..40).map(|i| Some(((i * 13) % 11) as f64)).collect();
        let fwd: Vec<Option<f64>> = (0..40).map(|i| Some(((i * 5) % 9) as f64 - 4.0)).collect();
        let whole = series(&[batch(dates.clone(), factor.clone(), fwd.clone())]);
        let cut: Vec<RecordBatch> = (0..40)
            .step_by(3)
            .map(|s| {
                let e = (s + 3).min(40);
                batch(
                    dates[s..e].to_vec(),
                    factor[s..e].to_vec(),
                    fwd[s..e].to_vec(),
                )
            })
            .collect();
        assert_eq!(whole, series(&cut));
        assert_eq!(whole.len(), 6);
    }

    #[test]
    fn a_panel_without_the_columns_is_an_error() {
        let schema = Schema::new(vec![Field::new("date", DataType::Date32, true)]);
        let b = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Date32Array::from(vec![1])) as ArrayRef],
        )
        .expect("batch");
        let err = IcSeries::default()
            .push(&b)
            .expect_err("no columns")
            .to_string();
        assert!(err.contains("no column composite"), "{err}");
    }
}
