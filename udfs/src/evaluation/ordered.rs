//! Order-sensitive aggregates over one series (`max_drawdown`, `nw_tstat`): the accumulator keeps
//! `(sort key, value)` for every valid value and sorts by the key of the first ORDER BY
//! expression at the end, so partial states merged from many partitions still give the answer
//! of one ordered pass. Without ORDER BY the arrival order is used (not deterministic across
//! partitions: always write `ORDER BY date`).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, ListArray};
use arrow::datatypes::{DataType, FieldRef, Float64Type, Int64Type};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, Signature, Volatility,
};

use crate::common::aggregate::{
    constant, f64_lists, i64_lists, list_f64_field, list_i64_field, order_keys,
};
use crate::common::{check_arity, coerce_all_to_f64, f64_array, integer_literal};

/// Computes the result from the values in order and the optional integer constant.
pub type OrderedFinish = fn(&[f64], Option<i64>) -> Option<f64>;

/// An order-sensitive aggregate `f(x [, constant]) ... ORDER BY key`.
#[derive(Debug)]
pub struct OrderedAggregate {
    name: &'static str,
    signature: Signature,
    doc: Documentation,
    constant_name: Option<&'static str>,
    finish: OrderedFinish,
}

crate::common::identity_by_name!(OrderedAggregate);

/// Build an order-sensitive aggregate; `constant_name` names an optional integer argument.
pub fn ordered_aggregate(
    name: &'static str,
    doc: Documentation,
    constant_name: Option<&'static str>,
    finish: OrderedFinish,
) -> AggregateUDF {
    AggregateUDF::new_from_impl(OrderedAggregate {
        name,
        signature: Signature::user_defined(Volatility::Immutable),
        doc,
        constant_name,
        finish,
    })
}

impl AggregateUDFImpl for OrderedAggregate {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(
            self.name,
            arg_types,
            1,
            if self.constant_name.is_some() { 2 } else { 1 },
        )?;
        coerce_all_to_f64(self.name, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let param = match (
            self.constant_name,
            constant(self.name, &args, 1, "the second argument")?,
        ) {
            (Some(what), Some(v)) => Some(integer_literal(self.name, &v, what, 0, 1_000_000)?),
            (None, Some(_)) => return plan_err!("{} takes one argument", self.name),
            _ => None,
        };
        let descending = args.order_bys.first().is_some_and(|o| o.options.descending);
        Ok(Box::new(OrderedAccumulator {
            name: self.name,
            args: args.exprs.len(),
            ordered: !args.order_bys.is_empty(),
            descending,
            keys: vec![],
            values: vec![],
            arrival: 0,
            param,
            finish: self.finish,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            list_i64_field(&format!("{}[keys]", args.name)),
            list_f64_field(&format!("{}[values]", args.name)),
        ])
    }

    fn with_beneficial_ordering(
        self: Arc<Self>,
        _beneficial_ordering: bool,
    ) -> Result<Option<Arc<dyn AggregateUDFImpl>>> {
        // The accumulator sorts by key itself, so it is the same with or without sorted input.
        Ok(Some(self))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        // Correct in any input order (it sorts by the key itself); sorted input is not needed.
        AggregateOrderSensitivity::SoftRequirement
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}

#[derive(Debug)]
struct OrderedAccumulator {
    name: &'static str,
    args: usize,
    ordered: bool,
    descending: bool,
    keys: Vec<i64>,
    values: Vec<f64>,
    arrival: i64,
    param: Option<i64>,
    finish: OrderedFinish,
}

impl Accumulator for OrderedAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let x = f64_array(self.name, &values[0])?;
        let keys = if self.ordered && values.len() > self.args {
            Some(order_keys(self.name, &values[self.args], self.descending)?)
        } else {
            None
        };
        for i in 0..x.len() {
            self.arrival += 1;
            if x.is_null(i) || !x.value(i).is_finite() {
                continue;
            }
            let key = match &keys {
                Some(k) => match k[i] {
                    Some(k) => k,
                    None => continue, // a NULL date has no place in the series
                },
                None => self.arrival,
            };
            self.keys.push(key);
            self.values.push(x.value(i));
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut order: Vec<usize> = (0..self.values.len()).collect();
        order.sort_by_key(|i| self.keys[*i]);
        let sorted: Vec<f64> = order.iter().map(|i| self.values[*i]).collect();
        let v = (self.finish)(&sorted, self.param)
            .filter(|x| x.is_finite())
            .map(|x| x + 0.0);
        Ok(ScalarValue::Float64(v))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.keys.capacity() * 8 + self.values.capacity() * 8
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let keys = ListArray::from_iter_primitive::<Int64Type, _, _>([Some(
            self.keys.iter().map(|k| Some(*k)).collect::<Vec<_>>(),
        )]);
        let values = ListArray::from_iter_primitive::<Float64Type, _, _>([Some(
            self.values.iter().map(|v| Some(*v)).collect::<Vec<_>>(),
        )]);
        Ok(vec![
            ScalarValue::List(Arc::new(keys)),
            ScalarValue::List(Arc::new(values)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let keys = i64_lists(&states[0])?;
        let values = f64_lists(&states[1])?;
        for (k, v) in keys.into_iter().zip(values) {
            if let (Some(k), Some(v)) = (k, v) {
                self.keys.extend(k);
                self.values.extend(v);
            }
        }
        Ok(())
    }
}
