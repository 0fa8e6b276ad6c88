//! `valid_value(x)`: `x` when it is valid, NULL when it is NULL, NaN or ±infinity.
//!
//! Arrow compares floats in their total order, where NaN is greater than every number: in
//! DataFusion `NaN > 0` is TRUE and `+inf >= 90` is TRUE. SPEC §1 says invalid values never
//! satisfy a condition, so every comparison lendfusion writes itself (views, built-in factors,
//! the report's SQL) compares `valid_value(x)` instead of `x`: an invalid value becomes NULL,
//! and SQL's three-valued logic does the rest (`NULL > 0` is not TRUE). Aggregates skip it too:
//! `AVG(valid_value(volume))` averages the valid volumes.

use std::sync::Arc;

use arrow::array::{Array, Float64Array};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::common::{check_arity, coerce_all_to_f64, doc, f64_array};

/// `valid_value(x)` → Float64.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ValidValue {
    signature: Signature,
    doc: Documentation,
}

/// The scalar function.
pub fn valid_value() -> ScalarUDF {
    ScalarUDF::new_from_impl(ValidValue {
        signature: Signature::user_defined(Volatility::Immutable),
        doc: doc(
            "Data validity",
            "The number itself when it is valid, NULL when it is NULL, NaN or infinite (SPEC's \
             invalid values). Compare `valid_value(x) > c` instead of `x > c` so that NaN and \
             infinities never satisfy a condition (in Arrow's total order `NaN > c` is TRUE), and \
             aggregate `AVG(valid_value(x))` to average only valid values.",
            "valid_value(x)",
            &[("x", "any number")],
            "```sql\n> SELECT valid_value(1.5), valid_value('NaN'::double), valid_value('inf'::double) > 0;\n1.5, NULL, NULL\n```",
        ),
    })
}

impl ScalarUDFImpl for ValidValue {
    fn name(&self) -> &str {
        "valid_value"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), arg_types, 1, 1)?;
        coerce_all_to_f64(self.name(), arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::Float64(v)) => Ok(ColumnarValue::Scalar(
                ScalarValue::Float64(v.filter(|x| x.is_finite())),
            )),
            ColumnarValue::Scalar(ScalarValue::Null) => {
                Ok(ColumnarValue::Scalar(ScalarValue::Float64(None)))
            }
            ColumnarValue::Scalar(other) => {
                datafusion::common::exec_err!("valid_value: expected a number, got {other}")
            }
            ColumnarValue::Array(array) => {
                let x = f64_array(self.name(), array)?;
                let finite = BooleanBuffer::collect_bool(x.len(), |i| x.value(i).is_finite());
                if finite.count_set_bits() == x.len() {
                    return Ok(ColumnarValue::Array(Arc::clone(array)));
                }
                let nulls = NullBuffer::union(Some(&NullBuffer::new(finite)), x.nulls());
                Ok(ColumnarValue::Array(Arc::new(Float64Array::new(
                    x.values().clone(),
                    nulls,
                ))))
            }
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}
