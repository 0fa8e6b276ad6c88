//! Helpers for lendfusion's aggregate functions: list-valued state, constant arguments, and the
//! sort keys that make order-sensitive aggregates correct across partitions.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray};
use arrow::datatypes::{DataType, Date32Type, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::AccumulatorArgs;

use super::literal_arg;

/// A `List<Float64>` field.
pub fn list_f64_field(name: &str) -> FieldRef {
    Arc::new(Field::new(
        name,
        DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
        true,
    ))
}

/// A `List<Int64>` field.
pub fn list_i64_field(name: &str) -> FieldRef {
    Arc::new(Field::new(
        name,
        DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
        true,
    ))
}

/// A `Float64` field.
pub fn f64_field(name: &str) -> FieldRef {
    Arc::new(Field::new(name, DataType::Float64, true))
}

/// A list scalar of floats.
pub fn f64_list_scalar(values: &[f64]) -> ScalarValue {
    ScalarValue::List(ScalarValue::new_list_nullable(
        &values
            .iter()
            .map(|v| ScalarValue::Float64(Some(*v)))
            .collect::<Vec<_>>(),
        &DataType::Float64,
    ))
}

/// A list scalar of integers.
pub fn i64_list_scalar(values: &[i64]) -> ScalarValue {
    ScalarValue::List(ScalarValue::new_list_nullable(
        &values
            .iter()
            .map(|v| ScalarValue::Int64(Some(*v)))
            .collect::<Vec<_>>(),
        &DataType::Int64,
    ))
}

/// Each non-NULL list of a `List<Float64>` state column.
pub fn f64_lists(array: &ArrayRef) -> Result<Vec<Option<Vec<f64>>>> {
    let Some(list) = array.as_list_opt::<i32>() else {
        return exec_err!("expected a list state, got {}", array.data_type());
    };
    Ok((0..list.len())
        .map(|i| {
            (!list.is_null(i)).then(|| {
                let values = list.value(i);
                values
                    .as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.unwrap_or(f64::NAN))
                    .collect()
            })
        })
        .collect())
}

/// Each non-NULL list of a `List<Int64>` state column.
pub fn i64_lists(array: &ArrayRef) -> Result<Vec<Option<Vec<i64>>>> {
    let Some(list) = array.as_list_opt::<i32>() else {
        return exec_err!("expected a list state, got {}", array.data_type());
    };
    Ok((0..list.len())
        .map(|i| {
            (!list.is_null(i)).then(|| {
                list.value(i)
                    .as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.unwrap_or(0))
                    .collect()
            })
        })
        .collect())
}

/// A `List<Float64>` array from per-group vectors.
pub fn f64_list_array(groups: impl IntoIterator<Item = Option<Vec<f64>>>) -> ArrayRef {
    Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(
        groups
            .into_iter()
            .map(|g| g.map(|v| v.into_iter().map(Some).collect::<Vec<_>>())),
    ))
}

/// The optional constant argument at `index` of an aggregate call.
pub fn constant(
    name: &str,
    args: &AccumulatorArgs,
    index: usize,
    what: &str,
) -> Result<Option<ScalarValue>> {
    literal_arg(name, args.exprs, index, what)
}

/// A positive finite constant (e.g. periods per year), or `default` when left out.
pub fn positive_constant(
    name: &str,
    args: &AccumulatorArgs,
    index: usize,
    what: &str,
    default: f64,
) -> Result<f64> {
    match constant(name, args, index, what)? {
        None => Ok(default),
        Some(v) => match v.cast_to(&DataType::Float64) {
            Ok(ScalarValue::Float64(Some(x))) if x.is_finite() && x > 0.0 => Ok(x),
            _ => plan_err!("{name}: {what} must be a positive number, got {v}"),
        },
    }
}

/// Sort keys for the first ORDER BY expression of an order-sensitive aggregate, as `i64`s whose
/// order is the ORDER BY's (descending keys are negated). Dates, timestamps, integers and floats
/// are accepted.
pub fn order_keys(name: &str, array: &ArrayRef, descending: bool) -> Result<Vec<Option<i64>>> {
    let keys: Vec<Option<i64>> = match array.data_type() {
        DataType::Date32 => array
            .as_primitive::<Date32Type>()
            .iter()
            .map(|v| v.map(i64::from))
            .collect(),
        DataType::Float32 | DataType::Float64 => {
            let floats = arrow::compute::cast(array, &DataType::Float64)?;
            floats
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.filter(|x| !x.is_nan()).map(total_order_key))
                .collect()
        }
        t if t.is_integer() || t.is_temporal() => {
            let ints = arrow::compute::cast(array, &DataType::Int64)?;
            ints.as_primitive::<Int64Type>().iter().collect()
        }
        other => {
            return plan_err!("{name}: ORDER BY must be a date, timestamp or number, got {other}");
        }
    };
    Ok(if descending {
        keys.into_iter().map(|k| k.map(|k| !k)).collect()
    } else {
        keys
    })
}

/// An `i64` with the total order of the float.
fn total_order_key(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// Float64 values of an argument.
pub fn f64_values<'a>(name: &str, array: &'a ArrayRef) -> Result<&'a Float64Array> {
    super::f64_array(name, array)
}

/// Int64 keys as an array (for states).
pub fn i64_array(values: Vec<i64>) -> Int64Array {
    Int64Array::from(values)
}
