//! `is_htb(fee_bps [, threshold_bps])`: hard to borrow.

use arrow::array::BooleanArray;
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::common::{check_arity, coerce_all_to_f64, doc, map_f64_pair};

/// Default hard-to-borrow threshold in bps.
pub const DEFAULT_HTB_BPS: f64 = 120.0;

/// `is_htb(fee_bps [, threshold_bps])` → Boolean.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IsHtb {
    signature: Signature,
    doc: Documentation,
}

#[inline]
fn htb(fee: f64, threshold: f64) -> Option<bool> {
    (fee.is_finite() && threshold.is_finite()).then_some(fee > threshold)
}

/// The scalar function.
pub fn is_htb() -> ScalarUDF {
    ScalarUDF::new_from_impl(IsHtb {
        signature: Signature::user_defined(Volatility::Immutable),
        doc: doc(
            "Lending factors",
            "Hard to borrow: TRUE when the borrow fee is strictly above the threshold (default 120 \
             bps), FALSE otherwise; NULL when the fee (or the threshold) is NULL, NaN or infinite.",
            "is_htb(fee_bps [, threshold_bps])",
            &[
                ("fee_bps", "indicative borrow fee, annualised bps"),
                ("threshold_bps", "optional threshold in bps, default 120"),
            ],
            "```sql\n> SELECT is_htb(150), is_htb(120), is_htb(150, 200);\ntrue, false, false\n```",
        ),
    })
}

impl ScalarUDFImpl for IsHtb {
    fn name(&self) -> &str {
        "is_htb"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), arg_types, 1, 2)?;
        coerce_all_to_f64(self.name(), arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        map_f64_pair::<_, BooleanArray>(
            self.name(),
            &args.args,
            Some(DEFAULT_HTB_BPS),
            htb,
            ScalarValue::Boolean,
        )
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}
