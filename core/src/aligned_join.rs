//! Joins on `date` between two tables read partition-aligned instead of hash-repartitioned.
//!
//! A partitioned hash join needs every pair of rows with equal keys in the same partition of
//! both inputs, so DataFusion hash-repartitions both: every row of both tables is hashed and
//! copied once more before the join sees it (for the factor panel's `lending JOIN market ON
//! date AND security_id`, ~10 M rows). Our tables already are partitioned by a function of
//! their `date` column: SPEC's layout puts a row in `month=YYYY-MM` (or `day=YYYY-MM-DD`) of
//! its date, which is also what [`crate::tables::DatedTable`] relies on to prune by date. Two
//! rows with equal dates therefore come from files with the same partition value, and reading
//! both tables with the same partition values in the same partition keeps every match within
//! one partition — no hashing, no copy.
//!
//! [`AlignPartitionedJoins`] finds a partitioned `HashJoinExec`, or a `SortMergeJoinExec` (what
//! a cluster plans: Ballista prefers the join that spills) whose inputs are partition-wise
//! sorts, whose keys include the `date` columns of both sides and whose inputs are hash
//! repartitions of Parquet scans partitioned by the same key (`month` or `day`), and replaces
//! the repartitions by the scans with their files regrouped (the sorts stay, over the scans; a
//! cluster's join then runs in the stage that scans, instead of after a shuffle of both
//! tables): the sorted partition values of both tables are cut into as many contiguous runs
//! as the repartition had partitions, run `i` becomes partition `i` of both scans, each in
//! partition-value order. Only a join whose output is merged or repartitioned above it (through
//! filters, projections and partition-wise sorts) is rewritten: an operator above that relied on
//! the join's output being hash-partitioned, say a second join co-partitioned with it, would
//! otherwise see other partitions. It leaves the plan alone when there are fewer partition values
//! than partitions (a month's query keeps its parallel hash join). The join's dynamic filter,
//! which routes probe rows by the hash of their keys, is dropped with the repartitions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, DynamicFilterPhysicalExpr, lit};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode, SortMergeJoinExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};

use arrow::datatypes::DataType;
use lendfusion_udfs::planning::RECOMPUTE;

/// The date column SPEC's layout partitions by.
const DATE_COLUMN: &str = "date";
/// Partition keys whose value is a function of the date (see [`crate::config::Layout`]).
const DATE_PARTITION_KEYS: [&str; 2] = ["month", "day"];

/// Reads both inputs of a join on `date` partition-aligned (see the module).
#[derive(Debug, Default)]
pub struct AlignPartitionedJoins;

impl PhysicalOptimizerRule for AlignPartitionedJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            // Only a join whose output partitions are merged or repartitioned again above it:
            // nothing there may rely on the hash partitioning the join's output had.
            let regroups = node.downcast_ref::<RepartitionExec>().is_some()
                || node.downcast_ref::<SortPreservingMergeExec>().is_some()
                || node.downcast_ref::<CoalescePartitionsExec>().is_some();
            let children = node.children();
            let ([input], true) = (&children[..], regroups) else {
                return Ok(Transformed::no(node));
            };
            Ok(match realigned_below(input)? {
                Some(input) => {
                    Transformed::yes(Arc::clone(&node).replace_children(vec![input], RECOMPUTE)?)
                }
                None => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "lendfusion_align_partitioned_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `node` (filters, projections and partition-wise sorts over a hash join) with the join
/// aligned, if it can be.
fn realigned_below(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(join) = node.downcast_ref::<HashJoinExec>() {
        return aligned(join);
    }
    if let Some(join) = node.downcast_ref::<SortMergeJoinExec>() {
        return aligned_sort_merge(node, join);
    }
    let passes_partitions = node.downcast_ref::<FilterExec>().is_some()
        || node.downcast_ref::<ProjectionExec>().is_some()
        || node
            .downcast_ref::<SortExec>()
            .is_some_and(|sort| sort.preserve_partitioning());
    if !passes_partitions {
        return Ok(None);
    }
    let children = node.children();
    let [child] = children[..] else {
        return Ok(None);
    };
    match realigned_below(child)? {
        Some(child) => Ok(Some(
            Arc::clone(node).replace_children(vec![child], RECOMPUTE)?,
        )),
        None => Ok(None),
    }
}

/// One side of a candidate join: what is below its repartition, the Parquet scan there, its
/// partition key, and the scan columns the join keys are (names, and as columns of the table).
struct Side {
    below: Arc<dyn ExecutionPlan>,
    scan: FileScanConfig,
    source: ParquetSource,
    key: String,
    partitions: usize,
    key_columns: Vec<String>,
    key_exprs: Vec<Arc<dyn PhysicalExpr>>,
}

/// The join over aligned scans, or `None` when it is not a join this rule may rewrite.
fn aligned(join: &HashJoinExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if *join.partition_mode() != PartitionMode::Partitioned {
        return Ok(None);
    }
    let Some([left_input, right_input]) = realigned_pair(
        join.left(),
        join.right(),
        join.on().iter().map(|(left, _)| left),
        join.on().iter().map(|(_, right)| right),
    )?
    else {
        return Ok(None);
    };
    let rebuilt = join
        .builder()
        .with_new_children(vec![left_input, right_input])?
        .reset_state()
        .recompute_properties()
        .build_exec()?;
    Ok(Some(rebuilt))
}

/// Both join inputs (hash repartitions of date-partitioned scans, see [`side`]) as aligned
/// scans, or `None` when they cannot be: the keys must pair the two `date` columns, and both
/// tables be partitioned by the same key into as many partitions.
fn realigned_pair<'a>(
    left: &Arc<dyn ExecutionPlan>,
    right: &Arc<dyn ExecutionPlan>,
    left_keys: impl Iterator<Item = &'a Arc<dyn PhysicalExpr>>,
    right_keys: impl Iterator<Item = &'a Arc<dyn PhysicalExpr>>,
) -> Result<Option<[Arc<dyn ExecutionPlan>; 2]>> {
    let (Some(left), Some(right)) = (side(left, left_keys), side(right, right_keys)) else {
        return Ok(None);
    };
    let on_dates = left
        .key_columns
        .iter()
        .zip(&right.key_columns)
        .any(|(left, right)| left == DATE_COLUMN && right == DATE_COLUMN);
    if !on_dates || left.key != right.key || left.partitions != right.partitions {
        return Ok(None);
    }
    let Some(runs) = runs_of_values(&[&left.scan, &right.scan], left.partitions) else {
        return Ok(None);
    };
    let (Some(left_input), Some(right_input)) =
        (rebuilt_input(&left, &runs)?, rebuilt_input(&right, &runs)?)
    else {
        return Ok(None);
    };
    Ok(Some([left_input, right_input]))
}

/// The sort-merge join `node` over aligned scans, or `None` when it is not one this rule may
/// rewrite. A cluster plans these (Ballista prefers them: they spill), each input a
/// partition-wise sort of a hash repartition; the sorts stay, over the realigned scans.
fn aligned_sort_merge(
    node: &Arc<dyn ExecutionPlan>,
    join: &SortMergeJoinExec,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let (Some(left_input), Some(right_input)) = (
        partition_sort_input(join.left()),
        partition_sort_input(join.right()),
    ) else {
        return Ok(None);
    };
    let Some([left, right]) = realigned_pair(
        left_input,
        right_input,
        join.on().iter().map(|(left, _)| left),
        join.on().iter().map(|(_, right)| right),
    )?
    else {
        return Ok(None);
    };
    let left = Arc::clone(join.left()).replace_children(vec![left], RECOMPUTE)?;
    let right = Arc::clone(join.right()).replace_children(vec![right], RECOMPUTE)?;
    Ok(Some(
        Arc::clone(node).replace_children(vec![left, right], RECOMPUTE)?,
    ))
}

/// The input of a sort that keeps its input's partitions.
fn partition_sort_input(node: &Arc<dyn ExecutionPlan>) -> Option<&Arc<dyn ExecutionPlan>> {
    let sort = node.downcast_ref::<SortExec>()?;
    (sort.preserve_partitioning() && sort.fetch().is_none()).then_some(sort.input())
}

/// The scan column `expr` (over `input`'s schema) is, through the repartition, filters and
/// plain-column projections, or `None` when it is computed or there is no single Parquet scan.
fn scan_column(input: &Arc<dyn ExecutionPlan>, expr: &Arc<dyn PhysicalExpr>) -> Option<String> {
    let column = expr.downcast_ref::<Column>()?;
    let mut index = column.index();
    let mut node = Arc::clone(input);
    loop {
        if let Some(repartition) = node.downcast_ref::<RepartitionExec>() {
            node = Arc::clone(repartition.input());
        } else if let Some(filter) = node.downcast_ref::<FilterExec>() {
            if let Some(projection) = filter.projection() {
                index = *projection.get(index)?;
            }
            node = Arc::clone(filter.input());
        } else if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
            let projected = projection.expr().get(index)?;
            index = projected.expr.downcast_ref::<Column>()?.index();
            node = Arc::clone(projection.input());
        } else if node.downcast_ref::<DataSourceExec>().is_some() {
            let schema = node.schema();
            let field = schema.fields().get(index)?;
            if field.name() == DATE_COLUMN && field.data_type() != &DataType::Date32 {
                return None;
            }
            return Some(field.name().clone());
        } else {
            return None;
        }
    }
}

/// The join input as a hash repartition over filters and projections of one Parquet scan
/// partitioned by a date key, with `keys` (its join keys) plain columns of that scan.
fn side<'a>(
    input: &Arc<dyn ExecutionPlan>,
    keys: impl Iterator<Item = &'a Arc<dyn PhysicalExpr>>,
) -> Option<Side> {
    let repartition = input.downcast_ref::<RepartitionExec>()?;
    let Partitioning::Hash(_, partitions) = repartition.partitioning() else {
        return None;
    };
    let scan = scan_below(repartition.input())?;
    let [key] = scan.table_partition_cols().iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    let source = scan.file_source().downcast_ref::<ParquetSource>()?;
    if !DATE_PARTITION_KEYS.contains(&key.name().as_str()) || scan.limit.is_some() {
        return None;
    }
    let key_columns = keys
        .map(|expr| scan_column(input, expr))
        .collect::<Option<Vec<_>>>()?;
    let table_schema = source.table_schema().table_schema();
    let key_exprs = key_columns
        .iter()
        .map(|name| {
            let index = table_schema.index_of(name).ok()?;
            Some(Arc::new(Column::new(name, index)) as Arc<dyn PhysicalExpr>)
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Side {
        below: Arc::clone(repartition.input()),
        source: source.clone(),
        key: key.name().clone(),
        scan: scan.clone(),
        partitions: *partitions,
        key_columns,
        key_exprs,
    })
}

/// The file scan under filters and projections.
fn scan_below(node: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    if let Some(filter) = node.downcast_ref::<FilterExec>() {
        return scan_below(filter.input());
    }
    if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
        return scan_below(projection.input());
    }
    node.downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<FileScanConfig>()
}

/// The partition value of a file (plain or dictionary-encoded string).
fn partition_value(file: &PartitionedFile) -> Option<&str> {
    match file.partition_values.first()? {
        ScalarValue::Utf8(Some(value)) | ScalarValue::Utf8View(Some(value)) => Some(value),
        ScalarValue::Dictionary(_, value) => match value.as_ref() {
            ScalarValue::Utf8(Some(value)) | ScalarValue::Utf8View(Some(value)) => Some(value),
            _ => None,
        },
        _ => None,
    }
}

/// Which partition each partition value goes to: the sorted values of all `scans` cut into
/// `partitions` contiguous runs of (nearly) equal length; `None` when there are fewer values
/// than partitions or a file has no string partition value.
fn runs_of_values(scans: &[&FileScanConfig], partitions: usize) -> Option<BTreeMap<String, usize>> {
    let mut values = BTreeSet::new();
    for scan in scans {
        for file in scan.file_groups.iter().flat_map(|group| group.iter()) {
            values.insert(partition_value(file)?.to_string());
        }
    }
    if partitions == 0 || values.len() < partitions {
        return None;
    }
    let count = values.len();
    Some(
        values
            .into_iter()
            .enumerate()
            .map(|(position, value)| (value, position * partitions / count))
            .collect(),
    )
}

/// The side's repartition replaced by what is below it, with the scan's files regrouped by `runs`
/// and the dynamic filters of the join dropped from the scan's predicate. The scan declares
/// itself hash-partitioned on the join keys: not how its rows are placed, but the property
/// the join needs of it (equal keys in the same partition of both sides), and declaring an
/// output partitioning is also what keeps DataFusion from letting the scan's partitions steal
/// each other's files.
fn rebuilt_input(
    side: &Side,
    runs: &BTreeMap<String, usize>,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let scan = &side.scan;
    let mut groups: Vec<Vec<PartitionedFile>> = vec![vec![]; side.partitions];
    for file in scan.file_groups.iter().flat_map(|group| group.iter()) {
        let Some(run) = partition_value(file).and_then(|value| runs.get(value)) else {
            return Ok(None);
        };
        groups[*run].push(file.clone());
    }
    for group in &mut groups {
        group.sort_by(|a, b| file_order(a).cmp(&file_order(b)));
    }
    let source = match side.source.filter() {
        Some(predicate) => side
            .source
            .with_predicate(without_dynamic_filters(&predicate)?),
        None => side.source.clone(),
    };
    let config = FileScanConfigBuilder::from(scan.clone())
        .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
        .with_source(Arc::new(source))
        .with_output_partitioning(Some(Partitioning::Hash(
            side.key_exprs.clone(),
            side.partitions,
        )))
        .build();
    let new_scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
    Ok(Some(with_scan(&side.below, new_scan)?))
}

/// Files in partition-value order, then by path and byte range (the order rows were written).
fn file_order(file: &PartitionedFile) -> (Option<&str>, &str, Option<i64>) {
    (
        partition_value(file),
        file.object_meta.location.as_ref(),
        file.range.as_ref().map(|range| range.start),
    )
}

/// `node` (filters and projections over one scan) with the scan replaced.
fn with_scan(
    node: &Arc<dyn ExecutionPlan>,
    scan: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    if node.downcast_ref::<DataSourceExec>().is_some() {
        return Ok(scan);
    }
    let children = node.children();
    let [child] = children[..] else {
        return Ok(Arc::clone(node));
    };
    let child = with_scan(child, scan)?;
    Arc::clone(node).replace_children(vec![child], RECOMPUTE)
}

/// `predicate` with every dynamic filter replaced by `true` (its value before it is filled).
fn without_dynamic_filters(predicate: &Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
    Arc::clone(predicate)
        .transform_down(|expr| {
            Ok(
                if expr.downcast_ref::<DynamicFilterPhysicalExpr>().is_some() {
                    Transformed::yes(lit(true))
                } else {
                    Transformed::no(expr)
                },
            )
        })
        .data()
}
