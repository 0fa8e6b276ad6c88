//! `fm_coefficients(y, x1, ..., xk)`: per-date OLS coefficients (Fama-MacBeth first stage).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
    Signature, Volatility,
};

use super::fm_residual::MAX_REGRESSORS;
use crate::common::aggregate::{f64_list_array, f64_list_scalar, f64_lists, list_f64_field};
use crate::common::ols::Qr;
use crate::common::{check_arity, coerce_all_to_f64, doc, f64_array};

/// The aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FmCoefficients {
    signature: Signature,
    doc: Documentation,
}

/// The aggregate function.
pub fn fm_coefficients() -> AggregateUDF {
    AggregateUDF::new_from_impl(FmCoefficients {
        signature: Signature::user_defined(Volatility::Immutable),
        doc: doc(
            "Fama-MacBeth",
            "OLS coefficients [intercept, b1, ..., bk] of y on an intercept and x1..xk (1 <= k <= 8) \
             over the rows where y and every x are valid: the same regression as fm_residual, as an \
             aggregate for GROUP BY date. NULL when not estimable (n <= k + 1 or [1, X] \
             rank-deficient with numpy's matrix_rank tolerance). Givens QR state of (k+2)^2 numbers \
             per group, merged exactly across partitions. The second stage is nw_tstat (or avg) of \
             each coefficient over dates.",
            "fm_coefficients(y, x1 [, x2, ..., x8])",
            &[
                ("y", "dependent variable, e.g. the forward return"),
                ("x1..xk", "regressors (1 to 8)"),
            ],
            "```sql\nSELECT date, fm_coefficients(fwd21, util, ln(market_cap)) AS coef\nFROM panel GROUP BY date;\n```",
        ),
    })
}

fn absorb(qr: &mut Qr, columns: &[&Float64Array], row: usize, x: &mut [f64]) {
    let ok = columns
        .iter()
        .all(|c| c.is_valid(row) && c.value(row).is_finite());
    if !ok {
        return;
    }
    for (j, c) in columns[1..].iter().enumerate() {
        x[j] = c.value(row);
    }
    qr.add(x, columns[0].value(row));
}

fn result(qr: &Qr) -> Option<Vec<f64>> {
    qr.coefficients()
}

impl AggregateUDFImpl for FmCoefficients {
    fn name(&self) -> &str {
        "fm_coefficients"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), arg_types, 2, MAX_REGRESSORS + 1)?;
        coerce_all_to_f64(self.name(), arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Float64,
            true,
        ))))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(QrAccumulator {
            qr: Qr::new(args.exprs.len() - 1),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![list_f64_field(&format!("{}[qr]", args.name))])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(QrGroups {
            k: args.exprs.len() - 1,
            groups: vec![],
        }))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}

#[derive(Debug)]
struct QrAccumulator {
    qr: Qr,
}

fn columns(values: &[ArrayRef]) -> Result<Vec<&Float64Array>> {
    values
        .iter()
        .map(|a| f64_array("fm_coefficients", a))
        .collect()
}

impl Accumulator for QrAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let cols = columns(values)?;
        let mut x = vec![0.0; self.qr.k()];
        for row in 0..cols[0].len() {
            absorb(&mut self.qr, &cols, row, &mut x);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let list = f64_list_array([result(&self.qr)]);
        ScalarValue::try_from_array(&list, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.qr.to_state().len() * 8
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![f64_list_scalar(&self.qr.to_state())])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for state in f64_lists(&states[0])?.into_iter().flatten() {
            if let Some(other) = Qr::from_state(self.qr.k(), &state) {
                self.qr.merge(&other);
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct QrGroups {
    k: usize,
    groups: Vec<Qr>,
}

impl GroupsAccumulator for QrGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let k = self.k;
        self.groups.resize_with(total_num_groups, || Qr::new(k));
        let cols = columns(values)?;
        let mut x = vec![0.0; k];
        for (row, g) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            absorb(&mut self.groups[*g], &cols, row, &mut x);
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = emit_to.take_needed(&mut self.groups);
        Ok(f64_list_array(groups.iter().map(result)))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = emit_to.take_needed(&mut self.groups);
        Ok(vec![f64_list_array(
            groups.iter().map(|q| Some(q.to_state())),
        )])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let k = self.k;
        self.groups.resize_with(total_num_groups, || Qr::new(k));
        for (state, g) in f64_lists(&values[0])?.into_iter().zip(group_indices) {
            if let Some(other) = state.and_then(|s| Qr::from_state(k, &s)) {
                self.groups[*g].merge(&other);
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let cols = columns(values)?;
        let mut x = vec![0.0; self.k];
        let states = (0..cols[0].len()).map(|row| {
            let mut qr = Qr::new(self.k);
            if !opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                absorb(&mut qr, &cols, row, &mut x);
            }
            Some(qr.to_state())
        });
        Ok(vec![f64_list_array(states.collect::<Vec<_>>())])
    }

    fn size(&self) -> usize {
        self.groups.len() * (self.k + 2) * (self.k + 2) * 8
    }
}
