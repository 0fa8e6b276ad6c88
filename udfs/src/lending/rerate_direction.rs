//! `rerate_direction(vwaf_today, vwaf_previous)`: whether the fee of open loans got hotter.

use arrow::array::Int8Array;
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::common::{check_arity, coerce_all_to_f64, doc, map_f64_pair};

/// `rerate_direction(vwaf_today, vwaf_previous)` → Int8.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RerateDirection {
    signature: Signature,
    doc: Documentation,
}

/// `1` hotter (today > previous), `-1` cooler, `0` unchanged; `None` if either is invalid.
#[inline]
fn direction(today: f64, previous: f64) -> Option<i8> {
    (today.is_finite() && previous.is_finite()).then(|| match today.partial_cmp(&previous) {
        Some(std::cmp::Ordering::Greater) => 1,
        Some(std::cmp::Ordering::Less) => -1,
        _ => 0,
    })
}

/// The scalar function.
pub fn rerate_direction() -> ScalarUDF {
    ScalarUDF::new_from_impl(RerateDirection {
        signature: Signature::user_defined(Volatility::Immutable),
        doc: doc(
            "Lending factors",
            "Direction of the re-rate of the volume-weighted average fee: 1 when today's fee is \
             higher than the previous one (hotter), -1 when lower (cooler), 0 when unchanged; NULL \
             when either is NULL, NaN or infinite. Use LAG(vwaf_bps) OVER (PARTITION BY security_id \
             ORDER BY date) for the previous value.",
            "rerate_direction(vwaf_today, vwaf_previous)",
            &[
                ("vwaf_today", "volume-weighted average fee today, bps"),
                ("vwaf_previous", "the same on the previous day, bps"),
            ],
            "```sql\n> SELECT rerate_direction(120, 100), rerate_direction(80, 100), rerate_direction(100, 100);\n1, -1, 0\n```",
        ),
    })
}

impl ScalarUDFImpl for RerateDirection {
    fn name(&self) -> &str {
        "rerate_direction"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), arg_types, 2, 2)?;
        coerce_all_to_f64(self.name(), arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        map_f64_pair::<_, Int8Array>(self.name(), &args.args, None, direction, ScalarValue::Int8)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}
