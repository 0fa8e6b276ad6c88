//! The mergeable state of a return series, shared by `ann_return`, `ann_vol`, `sharpe_ratio`,
//! `information_ratio` and `hit_rate`: count, mean and sum of squared deviations (Welford, with
//! Chan's merge), the compounded growth as mantissa × 2^exponent (no overflow over long series),
//! and the count of positive returns. Invalid returns (NULL, NaN, ±inf) are skipped.

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, Signature, Volatility,
};

use crate::common::aggregate::{f64_field, positive_constant};
use crate::common::{check_arity, coerce_all_to_f64, f64_array};

/// Default periods per year (daily data).
pub const DAILY: f64 = 252.0;

/// Summary of the valid returns seen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesStats {
    /// Valid returns.
    pub n: f64,
    /// Their mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
    /// prod(1 + r) = mantissa * 2^exponent.
    pub mantissa: f64,
    /// See `mantissa`.
    pub exponent: f64,
    /// Returns above zero.
    pub positive: f64,
}

impl Default for SeriesStats {
    fn default() -> Self {
        Self {
            n: 0.0,
            mean: 0.0,
            m2: 0.0,
            mantissa: 1.0,
            exponent: 0.0,
            positive: 0.0,
        }
    }
}

impl SeriesStats {
    fn normalise(&mut self) {
        if self.mantissa != 0.0 && (self.mantissa.abs() > 1e150 || self.mantissa.abs() < 1e-150) {
            let (m, e) = libm::frexp(self.mantissa);
            self.mantissa = m;
            self.exponent += f64::from(e);
        }
    }

    /// Add one return (ignored unless finite).
    pub fn add(&mut self, r: f64) {
        if !r.is_finite() {
            return;
        }
        self.n += 1.0;
        let delta = r - self.mean;
        self.mean += delta / self.n;
        self.m2 += delta * (r - self.mean);
        self.mantissa *= 1.0 + r;
        self.normalise();
        if r > 0.0 {
            self.positive += 1.0;
        }
    }

    /// Merge another summary (Chan et al.).
    pub fn merge(&mut self, o: &SeriesStats) {
        if o.n == 0.0 {
            return;
        }
        if self.n == 0.0 {
            *self = *o;
            return;
        }
        let n = self.n + o.n;
        let delta = o.mean - self.mean;
        self.mean += delta * o.n / n;
        self.m2 += o.m2 + delta * delta * self.n * o.n / n;
        self.n = n;
        self.mantissa *= o.mantissa;
        self.exponent += o.exponent;
        self.normalise();
        self.positive += o.positive;
    }

    /// Sample standard deviation (NULL-like `None` when n < 2).
    pub fn stddev_samp(&self) -> Option<f64> {
        (self.n >= 2.0).then(|| (self.m2.max(0.0) / (self.n - 1.0)).sqrt())
    }

    /// `prod(1 + r)^(P / T) - 1`.
    pub fn annualised_return(&self, periods: f64) -> Option<f64> {
        if self.n == 0.0 {
            return None;
        }
        if self.mantissa == 0.0 {
            return Some(-1.0);
        }
        if self.mantissa < 0.0 {
            return None;
        }
        let log_growth = self.mantissa.ln() + self.exponent * std::f64::consts::LN_2;
        Some((log_growth * periods / self.n).exp() - 1.0)
    }

    /// `stddev_samp * sqrt(P)`.
    pub fn annualised_vol(&self, periods: f64) -> Option<f64> {
        self.stddev_samp().map(|sd| sd * periods.sqrt())
    }

    fn to_scalars(self) -> Vec<ScalarValue> {
        [
            self.n,
            self.mean,
            self.m2,
            self.mantissa,
            self.exponent,
            self.positive,
        ]
        .into_iter()
        .map(|v| ScalarValue::Float64(Some(v)))
        .collect()
    }
}

/// Turns the summary and the periods per year into the result.
pub type Finish = fn(&SeriesStats, f64) -> Option<f64>;

/// A return-series aggregate: `f(ret [, periods_per_year])`.
#[derive(Debug)]
pub struct SeriesAggregate {
    name: &'static str,
    signature: Signature,
    doc: Documentation,
    takes_periods: bool,
    finish: Finish,
}

crate::common::identity_by_name!(SeriesAggregate);

/// Build a return-series aggregate.
pub fn series_aggregate(
    name: &'static str,
    doc: Documentation,
    takes_periods: bool,
    finish: Finish,
) -> AggregateUDF {
    AggregateUDF::new_from_impl(SeriesAggregate {
        name,
        signature: Signature::user_defined(Volatility::Immutable),
        doc,
        takes_periods,
        finish,
    })
}

const STATE: [&str; 6] = ["n", "mean", "m2", "mantissa", "exponent", "positive"];

impl AggregateUDFImpl for SeriesAggregate {
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
            if self.takes_periods { 2 } else { 1 },
        )?;
        coerce_all_to_f64(self.name, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let periods = if self.takes_periods {
            positive_constant(self.name, &args, 1, "periods_per_year", DAILY)?
        } else {
            DAILY
        };
        Ok(Box::new(SeriesAccumulator {
            name: self.name,
            stats: SeriesStats::default(),
            periods,
            finish: self.finish,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(STATE
            .iter()
            .map(|s| f64_field(&format!("{}[{s}]", args.name)))
            .collect())
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}

#[derive(Debug)]
struct SeriesAccumulator {
    name: &'static str,
    stats: SeriesStats,
    periods: f64,
    finish: Finish,
}

impl Accumulator for SeriesAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let r = f64_array(self.name, &values[0])?;
        for v in r.iter().flatten() {
            self.stats.add(v);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let v = (self.finish)(&self.stats, self.periods)
            .filter(|x| x.is_finite())
            .map(|x| x + 0.0);
        Ok(ScalarValue::Float64(v))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(self.stats.to_scalars())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let cols = states
            .iter()
            .map(|a| f64_array(self.name, a))
            .collect::<Result<Vec<_>>>()?;
        for i in 0..cols[0].len() {
            if cols.iter().any(|c| c.is_null(i)) {
                continue;
            }
            let o = SeriesStats {
                n: cols[0].value(i),
                mean: cols[1].value(i),
                m2: cols[2].value(i),
                mantissa: cols[3].value(i),
                exponent: cols[4].value(i),
                positive: cols[5].value(i),
            };
            self.stats.merge(&o);
        }
        Ok(())
    }
}
