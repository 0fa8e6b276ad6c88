//! The shared implementation of SPEC's ratio factors.
//!
//! Ratio rule (SPEC §1): `ratio(a, b)` is `a / b`, NULL when either input is invalid (NULL, NaN,
//! ±inf), `b <= 0` or `a < 0`; a result that overflows to infinity is NULL too, and `-0.0` is
//! returned as `0.0`. Each ratio function lives in its own file and differs only in its name and
//! documentation.

use arrow::array::{Array, ArrayRef, Float64Array};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::common::{check_arity, coerce_all_to_f64, doc, f64_array, f64_result};

/// What distinguishes one ratio function from another.
#[derive(Debug, Clone, Copy)]
pub struct RatioSpec {
    /// SQL name.
    pub name: &'static str,
    /// Numerator argument name and meaning.
    pub numerator: (&'static str, &'static str),
    /// Denominator argument name and meaning.
    pub denominator: (&'static str, &'static str),
    /// What the ratio measures.
    pub description: &'static str,
    /// Example values `(a, b)` for the documentation.
    pub example: (f64, f64),
}

/// A ratio factor as a DataFusion scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RatioUdf {
    name: &'static str,
    signature: Signature,
    doc: Documentation,
}

/// The SPEC ratio: `None` when the ratio rule says NULL.
#[inline]
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    let r = a / b + 0.0;
    (a.is_finite() && b.is_finite() && b > 0.0 && a >= 0.0 && r.is_finite()).then_some(r)
}

/// Build the scalar function for `spec`.
pub fn ratio_udf(spec: RatioSpec) -> ScalarUDF {
    let (a, b) = spec.example;
    let example = format!(
        "```sql\n> SELECT {name}({a}, {b});\n{result}\n> SELECT {name}({num}, {den}) FROM ...;\n```",
        name = spec.name,
        result = ratio(a, b).map_or("NULL".to_string(), |r| r.to_string()),
        num = spec.numerator.0,
        den = spec.denominator.0,
    );
    let description = format!(
        "{} Ratio rule: `{} / {}`, NULL when either input is NULL, NaN or infinite, when the \
         denominator is zero or negative, or when the numerator is negative.",
        spec.description, spec.numerator.0, spec.denominator.0
    );
    ScalarUDF::new_from_impl(RatioUdf {
        name: spec.name,
        signature: Signature::user_defined(Volatility::Immutable),
        doc: doc(
            "Lending factors",
            &description,
            &format!(
                "{}({}, {})",
                spec.name, spec.numerator.0, spec.denominator.0
            ),
            &[spec.numerator, spec.denominator],
            &example,
        ),
    })
}

/// Apply the ratio rule element-wise.
pub fn ratio_arrays(a: &Float64Array, b: &Float64Array) -> ArrayRef {
    let (av, bv) = (a.values(), b.values());
    let values: Vec<f64> = av.iter().zip(bv.iter()).map(|(x, y)| x / y + 0.0).collect();
    let valid = BooleanBuffer::collect_bool(values.len(), |i| {
        let (x, y) = (av[i], bv[i]);
        x.is_finite() && y.is_finite() && y > 0.0 && x >= 0.0 && values[i].is_finite()
    });
    f64_result(values, valid, &[a.nulls(), b.nulls()])
}

impl ScalarUDFImpl for RatioUdf {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name, arg_types, 2, 2)?;
        coerce_all_to_f64(self.name, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let [ColumnarValue::Scalar(a), ColumnarValue::Scalar(b)] = args.args.as_slice() {
            let a = scalar_f64(a);
            let b = scalar_f64(b);
            let r = a.zip(b).and_then(|(a, b)| ratio(a, b));
            return Ok(ColumnarValue::Scalar(ScalarValue::Float64(r)));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let a = f64_array(self.name, &arrays[0])?;
        let b = f64_array(self.name, &arrays[1])?;
        Ok(ColumnarValue::Array(ratio_arrays(a, b)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}

/// A Float64 scalar's value (`None` for NULL or another type).
pub fn scalar_f64(v: &ScalarValue) -> Option<f64> {
    match v {
        ScalarValue::Float64(x) => *x,
        _ => None,
    }
}
