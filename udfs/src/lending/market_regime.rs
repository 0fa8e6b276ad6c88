//! `market_regime(market_return_3m [, band])`: oversold, overbought or range.

use arrow::array::StringArray;
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::common::{check_arity, coerce_all_to_f64, doc, map_f64_pair};

/// Default band.
pub const DEFAULT_BAND: f64 = 0.15;

/// `market_regime(market_return_3m [, band])` → Utf8.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MarketRegime {
    signature: Signature,
    doc: Documentation,
}

#[inline]
fn regime(ret: f64, band: f64) -> Option<&'static str> {
    if !ret.is_finite() || !band.is_finite() || band < 0.0 {
        return None;
    }
    Some(if ret < -band {
        "oversold"
    } else if ret > band {
        "overbought"
    } else {
        "range"
    })
}

/// The scalar function.
pub fn market_regime() -> ScalarUDF {
    ScalarUDF::new_from_impl(MarketRegime {
        signature: Signature::user_defined(Volatility::Immutable),
        doc: doc(
            "Lending factors",
            "Market regime from the market's 3-month return: 'oversold' when below -band, \
             'overbought' when above band, otherwise 'range' (the bounds themselves are 'range'). \
             Default band 0.15. NULL when the return is NULL, NaN or infinite, or the band is \
             invalid or negative.",
            "market_regime(market_return_3m [, band])",
            &[
                (
                    "market_return_3m",
                    "the market's simple return over the last 3 months",
                ),
                (
                    "band",
                    "optional half-width of the range regime, default 0.15",
                ),
            ],
            "```sql\n> SELECT market_regime(-0.2), market_regime(0.1), market_regime(0.2), market_regime(0.1, 0.05);\noversold, range, overbought, overbought\n```",
        ),
    })
}

impl ScalarUDFImpl for MarketRegime {
    fn name(&self) -> &str {
        "market_regime"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), arg_types, 1, 2)?;
        coerce_all_to_f64(self.name(), arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        map_f64_pair::<_, StringArray>(
            self.name(),
            &args.args,
            Some(DEFAULT_BAND),
            |r, b| regime(r, b).map(str::to_string),
            ScalarValue::Utf8,
        )
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}
