//! `dcbs(fee_bps [, breakpoints])`: cost-of-borrow score 1..10 from the fee.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int8Array};
use arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::common::{check_arity, doc, f64_array, is_numeric_like};

/// Default breakpoints in bps.
pub const DEFAULT_BREAKPOINTS: [f64; 9] = [
    25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0,
];

/// `dcbs(fee_bps [, breakpoints])` → Int8.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Dcbs {
    signature: Signature,
    doc: Documentation,
}

/// `1 + number of breakpoints strictly below fee`; `None` for an invalid or negative fee.
#[inline]
pub fn score(fee: f64, breakpoints: &[f64; 9]) -> Option<i8> {
    (fee.is_finite() && fee >= 0.0)
        .then(|| 1 + breakpoints.iter().filter(|b| **b < fee).count() as i8)
}

/// Check a breakpoint list: 9 finite, strictly ascending numbers.
fn parse_breakpoints(values: &arrow::array::Float64Array) -> Result<[f64; 9]> {
    let list: Vec<Option<f64>> = values.iter().collect();
    let show = || {
        let shown: Vec<String> = list
            .iter()
            .map(|v| v.map_or_else(|| "NULL".to_string(), |x| x.to_string()))
            .collect();
        format!("[{}]", shown.join(", "))
    };
    if list.len() != 9 {
        return exec_err!(
            "dcbs: breakpoints must be a list of 9 ascending numbers, got {} values {}",
            list.len(),
            show()
        );
    }
    let mut out = [0.0; 9];
    for (i, v) in list.iter().enumerate() {
        match v {
            Some(x) if x.is_finite() => out[i] = *x,
            _ => {
                return exec_err!(
                    "dcbs: breakpoint {} is NULL, NaN or infinite in {}",
                    i + 1,
                    show()
                );
            }
        }
    }
    if out.windows(2).any(|w| w[0] >= w[1]) {
        return exec_err!(
            "dcbs: breakpoints must be strictly ascending, got {}",
            show()
        );
    }
    Ok(out)
}

/// The scalar function.
pub fn dcbs() -> ScalarUDF {
    ScalarUDF::new_from_impl(Dcbs {
        signature: Signature::user_defined(Volatility::Immutable),
        doc: doc(
            "Lending factors",
            "Cost-of-borrow score 1..10 from the fee: 1 + the number of breakpoints strictly below \
             fee_bps. Default breakpoints (bps) [25, 50, 100, 200, 400, 800, 1600, 3200, 6400], so \
             a fee of exactly 25 scores 1 and 26 scores 2. NULL for a NULL, NaN, infinite or \
             negative fee; an error when breakpoints are not 9 strictly ascending finite numbers.",
            "dcbs(fee_bps [, breakpoints])",
            &[
                ("fee_bps", "indicative borrow fee, annualised bps"),
                (
                    "breakpoints",
                    "optional list of 9 strictly ascending numbers, e.g. [10, 20, 40, 80, 160, 320, 640, 1280, 2560]",
                ),
            ],
            "```sql\n> SELECT dcbs(30), dcbs(25), dcbs(10000), dcbs(30, [10, 20, 40, 80, 160, 320, 640, 1280, 2560]);\n2, 1, 10, 3\n```",
        ),
    })
}

fn list_f64() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

impl ScalarUDFImpl for Dcbs {
    fn name(&self) -> &str {
        "dcbs"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), arg_types, 1, 2)?;
        if !is_numeric_like(&arg_types[0]) {
            return plan_err!("dcbs: fee_bps must be a number, got {}", arg_types[0]);
        }
        let mut out = vec![DataType::Float64];
        if let Some(t) = arg_types.get(1) {
            match t {
                DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)
                    if is_numeric_like(f.data_type()) =>
                {
                    out.push(list_f64())
                }
                DataType::Null => out.push(list_f64()),
                other => {
                    return plan_err!("dcbs: breakpoints must be a list of numbers, got {other}");
                }
            }
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Breakpoints: the default, one constant list, or a list per row.
        let constant = match args.args.get(1) {
            None => Some(Some(DEFAULT_BREAKPOINTS)),
            Some(ColumnarValue::Scalar(ScalarValue::List(list))) => Some(if list.is_null(0) {
                None
            } else {
                Some(parse_breakpoints(
                    list.value(0).as_primitive::<Float64Type>(),
                )?)
            }),
            Some(ColumnarValue::Scalar(s)) if s.is_null() => Some(None),
            _ => None,
        };
        if let (ColumnarValue::Scalar(fee), Some(bp)) = (&args.args[0], constant) {
            let fee = match fee {
                ScalarValue::Float64(v) => *v,
                _ => None,
            };
            return Ok(ColumnarValue::Scalar(ScalarValue::Int8(
                fee.zip(bp).and_then(|(f, bp)| score(f, &bp)),
            )));
        }
        let n = args.number_rows;
        let fee = args.args[0].to_array(n)?;
        let fee = f64_array(self.name(), &fee)?;
        let out: Int8Array = match constant {
            Some(None) => Int8Array::new_null(n),
            Some(Some(bp)) => fee.iter().map(|f| f.and_then(|f| score(f, &bp))).collect(),
            None => {
                let lists = args.args[1].to_array(n)?;
                let lists = lists.as_list_opt::<i32>().ok_or_else(|| {
                    datafusion::error::DataFusionError::Execution(
                        "dcbs: breakpoints must be a list".into(),
                    )
                })?;
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    if lists.is_null(i) || fee.is_null(i) {
                        out.push(None);
                        continue;
                    }
                    let bp = parse_breakpoints(lists.value(i).as_primitive::<Float64Type>())?;
                    out.push(score(fee.value(i), &bp));
                }
                out.into_iter().collect()
            }
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}
