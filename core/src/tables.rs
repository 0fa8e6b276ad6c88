//! The table catalog: the four SPEC tables registered from a dataset root.
//!
//! Each table is a [`ListingTable`] over `<root>/<table>/` wrapped in a [`DatedTable`], which
//! hides the Hive partition key (`month=YYYY-MM` or `day=YYYY-MM-DD`) from the table's columns
//! and turns filters on the table's date column into filters on that key, so that a query for
//! one month lists and opens only that month's files. Row groups are pruned by the Parquet
//! statistics of `date` as usual.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use chrono::{Datelike, NaiveDate};
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType, col, lit,
};
use datafusion::physical_plan::ExecutionPlan;
use url::Url;

use crate::config::Layout;
use crate::schema;
use crate::strict_adapter::StrictExprAdapterFactory;

/// A SPEC table over a folder of Parquet files, pruned by date through its partition folders.
#[derive(Debug)]
pub struct DatedTable {
    name: String,
    inner: ListingTable,
    schema: SchemaRef,
    layout: Layout,
    date_column: &'static str,
    root: Url,
    location: Url,
}

impl DatedTable {
    /// Build the table `name` (one of [`schema::TABLE_NAMES`]) under `root`.
    pub fn try_new(root: &Url, name: &str, layout: Layout) -> DfResult<Self> {
        let table_schema = schema::table_schema(name).ok_or_else(|| {
            datafusion::error::DataFusionError::Plan(format!("unknown lendfusion table {name}"))
        })?;
        let location = root.join(&format!("{name}/")).map_err(|e| {
            datafusion::error::DataFusionError::Plan(format!("bad table URL for {name}: {e}"))
        })?;
        let table_url = ListingTableUrl::parse(location.as_str())?;
        let mut options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        if let Some(key) = layout.partition_key() {
            options = options.with_table_partition_cols(vec![(key.to_string(), DataType::Utf8)]);
        }
        let config = ListingTableConfig::new(table_url)
            .with_listing_options(options)
            .with_schema(Arc::clone(&table_schema))
            .with_expr_adapter_factory(Arc::new(StrictExprAdapterFactory));
        let inner = ListingTable::try_new(config)?;
        Ok(Self {
            name: name.to_string(),
            inner,
            schema: table_schema,
            layout,
            date_column: schema::date_column(name),
            root: root.clone(),
            location,
        })
    }

    /// Table name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dataset root the table lives under.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// File layout below the table folder.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// URL of the table folder.
    pub fn location(&self) -> &Url {
        &self.location
    }

    /// Filters on the partition key implied by `filters` on the date column.
    fn partition_filters(&self, filters: &[Expr]) -> Vec<Expr> {
        let Some(key) = self.layout.partition_key() else {
            return vec![];
        };
        let mut bounds = DateBounds::default();
        for filter in filters {
            bounds.absorb(filter, self.date_column);
        }
        let fmt = |d: NaiveDate| match self.layout {
            Layout::Month => format!("{:04}-{:02}", d.year(), d.month()),
            _ => d.format("%Y-%m-%d").to_string(),
        };
        let mut out = vec![];
        if let Some(lo) = bounds.lower {
            out.push(col(key).gt_eq(lit(fmt(lo))));
        }
        if let Some(hi) = bounds.upper {
            out.push(col(key).lt_eq(lit(fmt(hi))));
        }
        out
    }
}

#[async_trait]
impl TableProvider for DatedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Parquet pruning is by statistics and so inexact: DataFusion keeps its own filter.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        // The inner table has the partition key appended after our columns, so our column
        // indices are valid for it; `None` must not leak the key into the output.
        let all: Vec<usize>;
        let projection = match projection {
            Some(p) => p,
            None => {
                all = (0..self.schema.fields().len()).collect();
                &all
            }
        };
        let mut filters = filters.to_vec();
        filters.extend(self.partition_filters(&filters));
        self.inner
            .scan(state, Some(projection), &filters, limit)
            .await
    }
}

/// Inclusive bounds on a date column collected from conjunctive filters.
#[derive(Debug, Default)]
struct DateBounds {
    lower: Option<NaiveDate>,
    upper: Option<NaiveDate>,
}

impl DateBounds {
    fn raise_lower(&mut self, d: NaiveDate) {
        self.lower = Some(self.lower.map_or(d, |l| l.max(d)));
    }

    fn lower_upper(&mut self, d: NaiveDate) {
        self.upper = Some(self.upper.map_or(d, |u| u.min(d)));
    }

    fn absorb(&mut self, expr: &Expr, column: &str) {
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) if *op == Operator::And => {
                self.absorb(left, column);
                self.absorb(right, column);
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (op, value) = match (is_column(left, column), is_column(right, column)) {
                    (true, false) => (*op, date_literal(right)),
                    (false, true) => match op.swap() {
                        Some(swapped) => (swapped, date_literal(left)),
                        None => return,
                    },
                    _ => return,
                };
                let Some(d) = value else { return };
                match op {
                    Operator::Eq => {
                        self.raise_lower(d);
                        self.lower_upper(d);
                    }
                    Operator::GtEq => self.raise_lower(d),
                    Operator::Gt => self.raise_lower(d.succ_opt().unwrap_or(d)),
                    Operator::LtEq => self.lower_upper(d),
                    Operator::Lt => self.lower_upper(d.pred_opt().unwrap_or(d)),
                    _ => {}
                }
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if is_column(expr, column) => {
                if let Some(lo) = date_literal(low) {
                    self.raise_lower(lo);
                }
                if let Some(hi) = date_literal(high) {
                    self.lower_upper(hi);
                }
            }
            Expr::InList(in_list) if !in_list.negated && is_column(&in_list.expr, column) => {
                let dates: Option<Vec<NaiveDate>> = in_list.list.iter().map(date_literal).collect();
                if let Some((lo, hi)) = dates
                    .as_ref()
                    .and_then(|d| Some((*d.iter().min()?, *d.iter().max()?)))
                {
                    self.raise_lower(lo);
                    self.lower_upper(hi);
                }
            }
            _ => {}
        }
    }
}

fn is_column(expr: &Expr, column: &str) -> bool {
    matches!(expr, Expr::Column(c) if c.name == column)
}

/// A date literal, also through a cast of a string or timestamp literal.
fn date_literal(expr: &Expr) -> Option<NaiveDate> {
    match expr {
        Expr::Literal(value, _) => scalar_date(value),
        Expr::Cast(cast) => date_literal(&cast.expr),
        Expr::TryCast(cast) => date_literal(&cast.expr),
        _ => None,
    }
}

fn scalar_date(value: &ScalarValue) -> Option<NaiveDate> {
    const EPOCH_DAYS_FROM_CE: i32 = 719_163;
    match value {
        ScalarValue::Date32(Some(days)) => {
            NaiveDate::from_num_days_from_ce_opt(days.checked_add(EPOCH_DAYS_FROM_CE)?)
        }
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> Expr {
        lit(ScalarValue::Date32(Some(
            (NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
                - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch"))
            .num_days() as i32,
        )))
    }

    fn bounds(filters: &[Expr]) -> (Option<String>, Option<String>) {
        let mut b = DateBounds::default();
        for f in filters {
            b.absorb(f, "date");
        }
        (
            b.lower.map(|d| d.to_string()),
            b.upper.map(|d| d.to_string()),
        )
    }

    #[test]
    fn bounds_from_comparisons() {
        let (lo, hi) = bounds(&[
            col("date").gt_eq(date("2020-03-01")),
            date("2020-03-31").gt(col("date")),
        ]);
        assert_eq!(lo.as_deref(), Some("2020-03-01"));
        assert_eq!(hi.as_deref(), Some("2020-03-30"));
        let (lo, hi) = bounds(&[
            col("date").gt(date("2020-03-31")),
            col("date").lt(date("2020-05-01")),
        ]);
        assert_eq!(
            (lo.as_deref(), hi.as_deref()),
            (Some("2020-04-01"), Some("2020-04-30"))
        );
        let (lo, hi) = bounds(&[col("date").eq(date("2021-01-05"))]);
        assert_eq!(
            (lo.as_deref(), hi.as_deref()),
            (Some("2021-01-05"), Some("2021-01-05"))
        );
        let (lo, hi) = bounds(&[col("date").between(date("2020-01-01"), date("2020-02-01"))]);
        assert_eq!(
            (lo.as_deref(), hi.as_deref()),
            (Some("2020-01-01"), Some("2020-02-01"))
        );
        let (lo, hi) =
            bounds(&[col("date").in_list(vec![date("2020-05-01"), date("2019-01-01")], false)]);
        assert_eq!(
            (lo.as_deref(), hi.as_deref()),
            (Some("2019-01-01"), Some("2020-05-01"))
        );
        // An OR, a negation or another column gives no bound.
        let (lo, hi) = bounds(&[
            col("date")
                .eq(date("2020-01-01"))
                .or(col("date").eq(date("2021-01-01"))),
            col("date").not_eq(date("2020-01-01")),
            col("other").eq(date("2020-01-01")),
        ]);
        assert_eq!((lo, hi), (None, None));
    }
}
