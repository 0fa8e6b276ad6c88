//! The shared shape of lendfusion's window functions (time series and cross sections): leading
//! value columns (coerced to Float64), trailing constant arguments, and a kernel that sees the
//! whole partition at once (`evaluate_all`), so any frame clause is ignored as SPEC §1 says.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    Documentation, LimitEffect, PartitionEvaluator, Signature, Volatility, WindowUDF, WindowUDFImpl,
};
use datafusion::physical_expr::PhysicalExpr;

use crate::common::{check_arity, coerce_all_to_f64, f64_array, literal_arg};

/// Computes a whole partition's output from its value columns.
pub trait PartitionKernel: std::fmt::Debug + Send {
    /// `columns` are the value arguments, each `num_rows` long, in partition order.
    fn evaluate(&self, columns: &[&Float64Array], num_rows: usize) -> Result<ArrayRef>;
}

/// Parses the constant arguments (`None` where an optional one was left out) into a kernel.
pub type KernelFactory = fn(&[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>>;

/// A lendfusion window function. Functions are identified by name (names are unique), so
/// equality and hashing ignore the kernel factory.
#[derive(Debug)]
pub struct PartitionWindow {
    name: &'static str,
    signature: Signature,
    doc: Documentation,
    value_args: (usize, usize),
    const_args: (usize, usize),
    return_type: DataType,
    factory: KernelFactory,
    /// Arguments from this index on may also be Boolean (read as 1.0 / 0.0).
    boolean_from: usize,
}

/// Describe and build a window function.
pub fn partition_window(
    name: &'static str,
    doc: Documentation,
    value_args: (usize, usize),
    const_args: (usize, usize),
    return_type: DataType,
    factory: KernelFactory,
) -> WindowUDF {
    let shape = Shape {
        value_args,
        const_args,
        boolean_from: usize::MAX,
    };
    WindowUDF::new_from_impl(PartitionWindow::new(name, doc, shape, return_type, factory))
}

/// [`partition_window`] without constants, whose arguments from `boolean_from` on may be
/// Boolean flags.
pub fn partition_window_with_flags(
    name: &'static str,
    doc: Documentation,
    value_args: (usize, usize),
    return_type: DataType,
    factory: KernelFactory,
    boolean_from: usize,
) -> WindowUDF {
    let shape = Shape {
        value_args,
        const_args: (0, 0),
        boolean_from,
    };
    WindowUDF::new_from_impl(PartitionWindow::new(name, doc, shape, return_type, factory))
}

/// How a window function's arguments are laid out.
struct Shape {
    value_args: (usize, usize),
    const_args: (usize, usize),
    boolean_from: usize,
}

impl PartitionWindow {
    fn new(
        name: &'static str,
        doc: Documentation,
        shape: Shape,
        return_type: DataType,
        factory: KernelFactory,
    ) -> Self {
        Self {
            name,
            signature: Signature::user_defined(Volatility::Immutable),
            doc,
            value_args: shape.value_args,
            const_args: shape.const_args,
            return_type,
            factory,
            boolean_from: shape.boolean_from,
        }
    }
}

crate::common::identity_by_name!(PartitionWindow);

impl WindowUDFImpl for PartitionWindow {
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
            self.value_args.0 + self.const_args.0,
            self.value_args.1 + self.const_args.1,
        )?;
        let split = self.boolean_from.min(arg_types.len());
        let mut out = coerce_all_to_f64(self.name, &arg_types[..split])?;
        for (i, t) in arg_types[split..].iter().enumerate() {
            if *t == DataType::Boolean || crate::common::is_numeric_like(t) {
                out.push(DataType::Float64);
            } else {
                return datafusion::common::plan_err!(
                    "{}: argument {} must be a boolean, got {t}",
                    self.name,
                    split + i + 1
                );
            }
        }
        Ok(out)
    }

    fn partition_evaluator(
        &self,
        args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        let exprs: &[Arc<dyn PhysicalExpr>] = args.input_exprs();
        // Either the value columns or the constants vary in number, never both.
        let value_args = if self.const_args.0 == self.const_args.1 {
            exprs.len().saturating_sub(self.const_args.0)
        } else {
            self.value_args.0
        };
        let mut constants = vec![];
        for i in 0..self.const_args.1 {
            let index = value_args + i;
            constants.push(literal_arg(
                self.name,
                exprs,
                index,
                &format!("argument {}", index + 1),
            )?);
        }
        let kernel = (self.factory)(&constants)?;
        Ok(Box::new(PartitionEvaluatorImpl {
            name: self.name,
            value_args,
            kernel,
        }))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            field_args.name(),
            self.return_type.clone(),
            true,
        )))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }

    fn limit_effect(&self, _args: &[Arc<dyn PhysicalExpr>]) -> LimitEffect {
        LimitEffect::Unknown
    }
}

#[derive(Debug)]
struct PartitionEvaluatorImpl {
    name: &'static str,
    value_args: usize,
    kernel: Box<dyn PartitionKernel>,
}

impl PartitionEvaluator for PartitionEvaluatorImpl {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let columns = values[..self.value_args]
            .iter()
            .map(|a| f64_array(self.name, a))
            .collect::<Result<Vec<_>>>()?;
        self.kernel.evaluate(&columns, num_rows)
    }
}

/// SPEC-valid values of a column (`None` for NULL, NaN, ±inf).
pub fn valid(column: &Float64Array) -> Vec<Option<f64>> {
    crate::common::valid_values(column).collect()
}

/// A Float64 array from optional values, with non-finite results turned into NULL.
pub fn finite_array(values: impl IntoIterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(
        values
            .into_iter()
            .map(|v| v.filter(|x| x.is_finite()).map(|x| x + 0.0))
            .collect::<Float64Array>(),
    )
}

/// A constant argument the function cannot do without.
pub fn required<'a>(
    constants: &'a [Option<ScalarValue>],
    index: usize,
    name: &str,
    what: &str,
) -> Result<&'a ScalarValue> {
    match constants.get(index) {
        Some(Some(v)) => Ok(v),
        _ => datafusion::common::plan_err!("{name}: {what} is required"),
    }
}
