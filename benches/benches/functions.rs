//! Function kernels on 8192-row inputs with 0 %, 10 % and 50 % NULLs, one group per family.
//! Run with `cargo bench -p lendfusion-benches`; results are summarised in docs/benchmarks.md.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::{DataType, Field, FieldRef};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::common::ScalarValue;
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::function::PartitionEvaluatorArgs;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, WindowUDF};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, Literal};

const ROWS: usize = 8192;
const NULL_SHARES: [f64; 3] = [0.0, 0.1, 0.5];

/// Uniform numbers in [0, 1) from a xorshift generator.
fn uniforms(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Deterministic pseudo-random values around `level` with a share of NULLs.
fn column(seed: u64, level: f64, spread: f64, nulls: f64) -> ArrayRef {
    let mut next = uniforms(seed);
    Arc::new(
        (0..ROWS)
            .map(|_| {
                let u = next();
                let v = level * (1.0 + spread * (next() - 0.5));
                (u >= nulls).then_some(v)
            })
            .collect::<Float64Array>(),
    )
}

/// A random walk (prices, quantities) so that cohort and return functions see realistic paths.
fn walk(seed: u64, start: f64, step: f64, nulls: f64) -> ArrayRef {
    let mut next = uniforms(seed);
    let mut level = start;
    Arc::new(
        (0..ROWS)
            .map(|_| {
                level *= 1.0 + step * (next() - 0.5);
                let keep = next() >= nulls;
                keep.then_some((level * 100.0).round() / 100.0)
            })
            .collect::<Float64Array>(),
    )
}

fn find_scalar(name: &str) -> ScalarUDF {
    lendfusion_udfs::scalar_functions()
        .into_iter()
        .find(|f| f.name() == name)
        .expect(name)
}

fn find_window(name: &str) -> WindowUDF {
    lendfusion_udfs::window_functions()
        .into_iter()
        .find(|f| f.name() == name)
        .expect(name)
}

/// Time one window function on one partition: value columns plus constant arguments.
fn bench_window(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    udf: &WindowUDF,
    name: &str,
    nulls: f64,
    values: &[ArrayRef],
    constants: &[i64],
    rows: usize,
) {
    let mut exprs: Vec<Arc<dyn PhysicalExpr>> = (0..values.len())
        .map(|i| Arc::new(Column::new(&format!("v{i}"), i)) as Arc<dyn PhysicalExpr>)
        .collect();
    exprs.extend(constants.iter().map(|k| {
        Arc::new(Literal::new(ScalarValue::Float64(Some(*k as f64)))) as Arc<dyn PhysicalExpr>
    }));
    let fields: Vec<FieldRef> = (0..exprs.len())
        .map(|i| Arc::new(Field::new(format!("a{i}"), DataType::Float64, true)))
        .collect();
    group.bench_with_input(
        BenchmarkId::new(name, format!("{}%nulls", nulls * 100.0)),
        values,
        |bench, values| {
            bench.iter(|| {
                let args = PartitionEvaluatorArgs::new(&exprs, &fields, false, false);
                let mut evaluator = udf.partition_evaluator_factory(args).expect("evaluator");
                evaluator.evaluate_all(values, rows).expect("evaluate")
            })
        },
    );
}

fn bench_scalars(c: &mut Criterion) {
    let mut group = c.benchmark_group("lending");
    group.throughput(Throughput::Elements(ROWS as u64));
    let config = Arc::new(ConfigOptions::default());
    for (name, arity) in [
        ("utilization", 2),
        ("days_to_cover", 2),
        ("dcbs", 1),
        ("is_htb", 1),
    ] {
        let udf = find_scalar(name);
        for nulls in NULL_SHARES {
            let a = column(1, 300.0, 1.8, nulls);
            let b = column(2, 1000.0, 1.8, nulls);
            let args: Vec<ColumnarValue> = [a, b]
                .into_iter()
                .take(arity)
                .map(ColumnarValue::Array)
                .collect();
            let arg_fields: Vec<FieldRef> = (0..arity)
                .map(|i| Arc::new(Field::new(format!("a{i}"), DataType::Float64, true)))
                .collect();
            let return_field = Arc::new(Field::new("out", DataType::Float64, true));
            group.bench_with_input(
                BenchmarkId::new(name, format!("{}%nulls", nulls * 100.0)),
                &args,
                |bench, args| {
                    bench.iter(|| {
                        udf.invoke_with_args(ScalarFunctionArgs {
                            args: args.clone(),
                            arg_fields: arg_fields.clone(),
                            number_rows: ROWS,
                            return_field: Arc::clone(&return_field),
                            config_options: Arc::clone(&config),
                        })
                        .expect("invoke")
                    })
                },
            );
        }
    }
    group.finish();
}

fn bench_windows(c: &mut Criterion) {
    let mut group = c.benchmark_group("timeseries");
    group.throughput(Throughput::Elements(ROWS as u64));
    let calls: [(&str, usize, Vec<i64>); 8] = [
        ("fwd_return", 1, vec![21]),
        ("past_return", 1, vec![252, 21]),
        ("ts_zscore", 1, vec![252]),
        ("ts_beta", 2, vec![252]),
        ("short_cohort_otm", 2, vec![]),
        ("short_cohort_pnl", 2, vec![]),
        ("short_cohort_near_breakeven", 2, vec![]),
        ("squeeze_event", 2, vec![]),
    ];
    for (name, value_args, constants) in calls {
        let udf = find_window(name);
        for nulls in NULL_SHARES {
            let values: Vec<ArrayRef> = match name {
                "short_cohort_otm" | "short_cohort_pnl" | "short_cohort_near_breakeven" => {
                    vec![walk(3, 1e6, 0.1, nulls), walk(4, 50.0, 0.04, nulls)]
                }
                "squeeze_event" => vec![column(5, 0.0005, 40.0, nulls), walk(6, 1e6, 0.1, nulls)],
                _ => vec![
                    column(5, 0.0005, 40.0, nulls),
                    column(6, 0.0004, 30.0, nulls),
                ],
            }
            .into_iter()
            .take(value_args)
            .collect();
            bench_window(&mut group, &udf, name, nulls, &values, &constants, ROWS);
        }
    }
    group.finish();
}

/// Cross-sections of 5,000 rows, the size of a broad daily universe.
fn bench_cross_sections(c: &mut Criterion) {
    const SECTION: usize = 5_000;
    let mut group = c.benchmark_group("cross_section");
    group.throughput(Throughput::Elements(SECTION as u64));
    let calls: [(&str, usize, Vec<i64>); 5] = [
        ("cs_rank", 1, vec![]),
        ("cs_zscore", 1, vec![]),
        ("cs_bucket", 1, vec![10]),
        ("cs_normal_rank", 1, vec![]),
        ("fm_residual", 5, vec![]),
    ];
    for (name, value_args, constants) in calls {
        let udf = find_window(name);
        for nulls in NULL_SHARES {
            let values: Vec<ArrayRef> = (0..value_args)
                .map(|i| column(10 + i as u64, 1.0 + i as f64, 2.0, nulls).slice(0, SECTION))
                .collect();
            bench_window(&mut group, &udf, name, nulls, &values, &constants, SECTION);
        }
    }
    group.finish();
}

/// `spearman_ic` over 40 dates of 5,000 rows through its GroupsAccumulator.
fn bench_spearman_grouped(c: &mut Criterion) {
    const SECTION: usize = 5_000;
    const DATES: usize = 40;
    let udaf = lendfusion_udfs::aggregate_functions()
        .into_iter()
        .find(|f| f.name() == "spearman_ic")
        .expect("spearman_ic");
    let schema = arrow::datatypes::Schema::new(vec![
        Field::new("x", DataType::Float64, true),
        Field::new("y", DataType::Float64, true),
    ]);
    let exprs: Vec<Arc<dyn PhysicalExpr>> =
        vec![Arc::new(Column::new("x", 0)), Arc::new(Column::new("y", 1))];
    let fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    let rows = SECTION * DATES;
    let mut next = uniforms(21);
    let x: ArrayRef = Arc::new((0..rows).map(|_| next()).collect::<Float64Array>());
    let y: ArrayRef = Arc::new((0..rows).map(|_| next()).collect::<Float64Array>());
    let groups: Vec<usize> = (0..rows).map(|i| i / SECTION).collect();
    let mut group = c.benchmark_group("evaluation");
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function("spearman_ic/grouped", |bench| {
        bench.iter(|| {
            let return_field = Arc::new(Field::new("ic", DataType::Float64, true));
            let args = datafusion::logical_expr::function::AccumulatorArgs {
                return_field,
                schema: &schema,
                ignore_nulls: false,
                order_bys: &[],
                is_reversed: false,
                name: "spearman_ic",
                is_distinct: false,
                exprs: &exprs,
                expr_fields: &fields,
            };
            let mut acc = udaf
                .create_groups_accumulator(args)
                .expect("groups accumulator");
            acc.update_batch(
                &[x.slice(0, rows), y.slice(0, rows)],
                &groups,
                None,
                rows.div_ceil(SECTION),
            )
            .expect("update");
            acc.evaluate(datafusion::logical_expr::EmitTo::All)
                .expect("evaluate")
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_scalars,
    bench_windows,
    bench_cross_sections,
    bench_spearman_grouped
);
criterion_main!(benches);
