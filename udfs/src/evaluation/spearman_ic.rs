//! `spearman_ic(factor, fwd_ret)`: the rank information coefficient of a cross-section.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array};
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
    Signature, Volatility,
};

use crate::common::aggregate::{f64_list_array, f64_list_scalar, f64_lists, list_f64_field};
use crate::common::ranks::average_ranks;
use crate::common::{check_arity, coerce_all_to_f64, doc, f64_array};

/// Spearman correlation of valid pairs; `None` if n < 3 or either side has no variance.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 3 {
        return None;
    }
    let (rx, ry) = (average_ranks(x), average_ranks(y));
    let mean = (n as f64 + 1.0) / 2.0;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (a, b) = (rx[i] - mean, ry[i] - mean);
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    (sxx > 0.0 && syy > 0.0).then(|| (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// The aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SpearmanIc {
    signature: Signature,
    doc: Documentation,
}

/// The aggregate function.
pub fn spearman_ic() -> AggregateUDF {
    AggregateUDF::new_from_impl(SpearmanIc {
        signature: Signature::user_defined(Volatility::Immutable),
        doc: doc(
            "Factor evaluation",
            "Spearman rank correlation of factor and forward return over the rows where both are \
             valid, with average ranks for ties (scipy.stats.spearmanr). NULL if fewer than 3 valid \
             pairs or either side has no variance. Use GROUP BY date for the IC series.",
            "spearman_ic(factor, fwd_ret)",
            &[
                ("factor", "the factor value"),
                ("fwd_ret", "the forward return it should predict"),
            ],
            "```sql\nSELECT date, spearman_ic(util, fwd21) AS ic FROM panel GROUP BY date ORDER BY date;\n```",
        ),
    })
}

/// Keep row `i` as a pair if both sides are valid and finite (the rows `spearman_ic` takes).
pub fn push_pairs(
    x: &Float64Array,
    y: &Float64Array,
    i: usize,
    xs: &mut Vec<f64>,
    ys: &mut Vec<f64>,
) {
    if x.is_valid(i) && y.is_valid(i) && x.value(i).is_finite() && y.value(i).is_finite() {
        xs.push(x.value(i));
        ys.push(y.value(i));
    }
}

impl AggregateUDFImpl for SpearmanIc {
    fn name(&self) -> &str {
        "spearman_ic"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), arg_types, 2, 2)?;
        coerce_all_to_f64(self.name(), arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(PairsAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            list_f64_field(&format!("{}[x]", args.name)),
            list_f64_field(&format!("{}[y]", args.name)),
        ])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(PairsGroups::default()))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}

#[derive(Debug, Default)]
struct PairsAccumulator {
    x: Vec<f64>,
    y: Vec<f64>,
}

impl Accumulator for PairsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let x = f64_array("spearman_ic", &values[0])?;
        let y = f64_array("spearman_ic", &values[1])?;
        for i in 0..x.len() {
            push_pairs(x, y, i, &mut self.x, &mut self.y);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(spearman(&self.x, &self.y)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + 8 * (self.x.capacity() + self.y.capacity())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![f64_list_scalar(&self.x), f64_list_scalar(&self.y)])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for (x, y) in f64_lists(&states[0])?
            .into_iter()
            .zip(f64_lists(&states[1])?)
        {
            if let (Some(x), Some(y)) = (x, y) {
                self.x.extend(x);
                self.y.extend(y);
            }
        }
        Ok(())
    }
}

/// Pairs per group, for `GROUP BY date` over many dates.
#[derive(Debug, Default)]
struct PairsGroups {
    x: Vec<Vec<f64>>,
    y: Vec<Vec<f64>>,
}

impl PairsGroups {
    fn resize(&mut self, groups: usize) {
        self.x.resize_with(groups, Vec::new);
        self.y.resize_with(groups, Vec::new);
    }
}

impl GroupsAccumulator for PairsGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let x = f64_array("spearman_ic", &values[0])?;
        let y = f64_array("spearman_ic", &values[1])?;
        for (i, g) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(i) || !f.value(i)) {
                continue;
            }
            let (xs, ys) = (&mut self.x[*g], &mut self.y[*g]);
            push_pairs(x, y, i, xs, ys);
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let xs = emit_to.take_needed(&mut self.x);
        let ys = emit_to.take_needed(&mut self.y);
        let out: Float64Array = xs.iter().zip(&ys).map(|(x, y)| spearman(x, y)).collect();
        Ok(Arc::new(out))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let xs = emit_to.take_needed(&mut self.x);
        let ys = emit_to.take_needed(&mut self.y);
        Ok(vec![
            f64_list_array(xs.into_iter().map(Some)),
            f64_list_array(ys.into_iter().map(Some)),
        ])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let xs = f64_lists(&values[0])?;
        let ys = f64_lists(&values[1])?;
        for ((x, y), g) in xs.into_iter().zip(ys).zip(group_indices) {
            if let (Some(x), Some(y)) = (x, y) {
                self.x[*g].extend(x);
                self.y[*g].extend(y);
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let x = f64_array("spearman_ic", &values[0])?;
        let y = f64_array("spearman_ic", &values[1])?;
        let (mut xs, mut ys) = (vec![], vec![]);
        for i in 0..x.len() {
            let (mut a, mut b) = (vec![], vec![]);
            if !opt_filter.is_some_and(|f| !f.is_valid(i) || !f.value(i)) {
                push_pairs(x, y, i, &mut a, &mut b);
            }
            xs.push(Some(a));
            ys.push(Some(b));
        }
        Ok(vec![f64_list_array(xs), f64_list_array(ys)])
    }

    fn size(&self) -> usize {
        self.x
            .iter()
            .chain(&self.y)
            .map(|v| v.capacity() * 8 + 24)
            .sum()
    }
}
