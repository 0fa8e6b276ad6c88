//! Helpers shared by the function families: validity, argument coercion and extraction,
//! documentation, and the numerical building blocks.

pub mod aggregate;
pub mod normal;
pub mod ols;
pub mod price_tree;
pub mod ranks;
pub mod sliding;
pub mod window;
pub mod window_product;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{DocSection, Documentation};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;

/// Equality and hashing by SQL name for function structs that hold function pointers (names
/// are unique; comparing function pointers is meaningless).
macro_rules! identity_by_name {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.name == other.name
            }
        }

        impl Eq for $t {}

        impl std::hash::Hash for $t {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.name.hash(state);
            }
        }
    };
}
pub(crate) use identity_by_name;

/// SPEC's "valid": not NULL, not NaN, not infinite (NULL is checked by the caller).
#[inline]
pub fn finite(x: f64) -> bool {
    x.is_finite()
}

/// Whether a type can be coerced to Float64 for a numeric argument.
pub fn is_numeric_like(t: &DataType) -> bool {
    t.is_numeric() || matches!(t, DataType::Null)
}

/// Coerce every argument to Float64, or explain which one is not a number.
pub fn coerce_all_to_f64(name: &str, args: &[DataType]) -> Result<Vec<DataType>> {
    args.iter()
        .enumerate()
        .map(|(i, t)| {
            if is_numeric_like(t) {
                Ok(DataType::Float64)
            } else {
                plan_err!("{name}: argument {} must be a number, got {t}", i + 1)
            }
        })
        .collect()
}

/// Check the argument count is within `[min, max]`.
pub fn check_arity(name: &str, args: &[DataType], min: usize, max: usize) -> Result<()> {
    if args.len() < min || args.len() > max {
        let expected = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return plan_err!("{name} takes {expected} arguments, got {}", args.len());
    }
    Ok(())
}

/// An argument array as Float64 (already coerced by the planner).
pub fn f64_array<'a>(name: &str, array: &'a ArrayRef) -> Result<&'a Float64Array> {
    match array.as_primitive_opt::<Float64Type>() {
        Some(a) => Ok(a),
        None => exec_err!(
            "{name}: expected a Float64 argument, got {}",
            array.data_type()
        ),
    }
}

/// A Float64 result from values and a validity mask, combined with input nulls; invalid slots
/// hold 0.0.
pub fn f64_result(
    values: Vec<f64>,
    valid: BooleanBuffer,
    input_nulls: &[Option<&NullBuffer>],
) -> ArrayRef {
    let mut nulls = Some(NullBuffer::new(valid));
    for n in input_nulls {
        nulls = NullBuffer::union(nulls.as_ref(), *n);
    }
    Arc::new(Float64Array::new(values.into(), nulls))
}

/// A constant argument of a window function: it must be a literal.
pub fn literal_arg(
    name: &str,
    exprs: &[Arc<dyn PhysicalExpr>],
    index: usize,
    what: &str,
) -> Result<Option<ScalarValue>> {
    let Some(expr) = exprs.get(index) else {
        return Ok(None);
    };
    match expr.downcast_ref::<Literal>() {
        Some(lit) => Ok(Some(lit.value().clone())),
        None => plan_err!("{name}: {what} must be a constant, not a column or expression"),
    }
}

/// A literal that must be an integer within `[min, max]`.
pub fn integer_literal(
    name: &str,
    value: &ScalarValue,
    what: &str,
    min: i64,
    max: i64,
) -> Result<i64> {
    let v = match value.cast_to(&DataType::Float64) {
        Ok(ScalarValue::Float64(Some(v))) => v,
        _ => return plan_err!("{name}: {what} must be an integer, got {value}"),
    };
    if v.fract() != 0.0 || !v.is_finite() || v < min as f64 || v > max as f64 {
        return plan_err!("{name}: {what} must be an integer from {min} to {max}, got {value}");
    }
    Ok(v as i64)
}

/// A literal that must be a finite number.
pub fn number_literal(name: &str, value: &ScalarValue, what: &str) -> Result<f64> {
    match value.cast_to(&DataType::Float64) {
        Ok(ScalarValue::Float64(Some(v))) if v.is_finite() => Ok(v),
        _ => plan_err!("{name}: {what} must be a finite number, got {value}"),
    }
}

/// Documentation sections of the families.
pub fn section(label: &'static str) -> DocSection {
    DocSection {
        include: true,
        label,
        description: None,
    }
}

/// Build a function's documentation.
pub fn doc(
    section_label: &'static str,
    description: &str,
    syntax: &str,
    arguments: &[(&str, &str)],
    example: &str,
) -> Documentation {
    let mut builder = Documentation::builder(section(section_label), description, syntax);
    for (name, text) in arguments {
        builder = builder.with_argument(*name, *text);
    }
    builder.with_sql_example(example).build()
}

/// Float64 values of a window argument with SPEC validity (`None` = invalid).
pub fn valid_values(array: &Float64Array) -> impl Iterator<Item = Option<f64>> + '_ {
    array.iter().map(|v| v.filter(|x| x.is_finite()))
}

/// Apply `f` to two Float64 arguments row by row (the second defaulting to `default` when the
/// call leaves it out), with a scalar fast path. Rows where either input is NULL give NULL;
/// `f` decides about NaN, infinities and everything else.
pub fn map_f64_pair<T, A>(
    name: &str,
    args: &[datafusion::logical_expr::ColumnarValue],
    default: Option<f64>,
    f: impl Fn(f64, f64) -> Option<T>,
    scalar: impl Fn(Option<T>) -> ScalarValue,
) -> Result<datafusion::logical_expr::ColumnarValue>
where
    A: Array + FromIterator<Option<T>> + 'static,
{
    use datafusion::logical_expr::ColumnarValue;
    let mut inputs = args.to_vec();
    if inputs.len() == 1 {
        inputs.push(ColumnarValue::Scalar(ScalarValue::Float64(default)));
    }
    let as_f64 = |v: &ScalarValue| match v {
        ScalarValue::Float64(x) => *x,
        _ => None,
    };
    if let [ColumnarValue::Scalar(a), ColumnarValue::Scalar(b)] = inputs.as_slice() {
        return Ok(ColumnarValue::Scalar(scalar(
            as_f64(a).zip(as_f64(b)).and_then(|(a, b)| f(a, b)),
        )));
    }
    let arrays = ColumnarValue::values_to_arrays(&inputs)?;
    let a = f64_array(name, &arrays[0])?;
    let b = f64_array(name, &arrays[1])?;
    let out: A = (0..a.len())
        .map(|i| {
            if a.is_null(i) || b.is_null(i) {
                None
            } else {
                f(a.value(i), b.value(i))
            }
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(out)))
}
