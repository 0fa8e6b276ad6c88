//! Flight SQL metadata: catalogs, schemas, tables, table types, SqlInfo and XDBC type info,
//! read from the coordinator's catalog.

use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use arrow_flight::sql::metadata::{
    GetCatalogsBuilder, GetTablesBuilder, SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo,
    XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetTables, Nullable, Searchable, SqlInfo, XdbcDataType,
};
use datafusion::catalog::TableProvider;
use datafusion::datasource::TableType;
use datafusion::prelude::SessionContext;
use tonic::Status;

/// Every (catalog, schema, table, provider) of the context.
async fn all_tables(ctx: &SessionContext) -> Vec<(String, String, String, Arc<dyn TableProvider>)> {
    let mut out = vec![];
    let catalogs = ctx.state().catalog_list().clone();
    for catalog_name in catalogs.catalog_names() {
        let Some(catalog) = catalogs.catalog(&catalog_name) else {
            continue;
        };
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            for table_name in schema.table_names() {
                if let Ok(Some(provider)) = schema.table(&table_name).await {
                    out.push((
                        catalog_name.clone(),
                        schema_name.clone(),
                        table_name,
                        provider,
                    ));
                }
            }
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
    out
}

/// `GetCatalogs`.
pub fn catalogs(ctx: &SessionContext) -> Result<RecordBatch, Status> {
    let mut builder = GetCatalogsBuilder::new();
    let mut names = ctx.state().catalog_list().catalog_names();
    names.sort();
    for name in names {
        builder.append(name);
    }
    builder.build().map_err(arrow_status)
}

/// `GetDbSchemas`.
pub fn schemas(ctx: &SessionContext, query: CommandGetDbSchemas) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    let catalogs = ctx.state().catalog_list().clone();
    for catalog_name in catalogs.catalog_names() {
        if let Some(catalog) = catalogs.catalog(&catalog_name) {
            for schema_name in catalog.schema_names() {
                builder.append(&catalog_name, schema_name);
            }
        }
    }
    builder.build().map_err(arrow_status)
}

/// `GetTables` (with each table's Arrow schema when asked).
pub async fn tables(ctx: &SessionContext, query: CommandGetTables) -> Result<RecordBatch, Status> {
    let mut builder: GetTablesBuilder = query.into_builder();
    for (catalog, schema, table, provider) in all_tables(ctx).await {
        let kind = table_type(provider.table_type());
        builder
            .append(catalog, schema, table, kind, provider.schema().as_ref())
            .map_err(arrow_status)?;
    }
    builder.build().map_err(arrow_status)
}

/// The `GetTables` result schema for a query.
pub fn tables_schema(query: CommandGetTables) -> Arc<Schema> {
    query.into_builder().schema()
}

fn table_type(kind: TableType) -> &'static str {
    match kind {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

/// `GetTableTypes`.
pub fn table_types() -> Result<RecordBatch, Status> {
    use arrow::array::StringArray;
    let schema = Arc::new(Schema::new(vec![arrow::datatypes::Field::new(
        "table_type",
        arrow::datatypes::DataType::Utf8,
        false,
    )]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(vec![
            "LOCAL TEMPORARY",
            "TABLE",
            "VIEW",
        ]))],
    )
    .map_err(arrow_status)
}

/// What the server says about itself (`GetSqlInfo`).
pub fn sql_info() -> Result<SqlInfoData, Status> {
    let mut builder = SqlInfoDataBuilder::new();
    builder.append(SqlInfo::FlightSqlServerName, "lendfusion");
    builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    builder.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    builder.append(SqlInfo::FlightSqlServerReadOnly, true);
    builder.append(SqlInfo::FlightSqlServerSql, true);
    builder.append(SqlInfo::FlightSqlServerSubstrait, false);
    builder.append(SqlInfo::FlightSqlServerTransaction, 0_i32);
    builder.append(SqlInfo::FlightSqlServerCancel, false);
    builder.append(SqlInfo::SqlDdlCatalog, false);
    builder.append(SqlInfo::SqlDdlSchema, false);
    builder.append(SqlInfo::SqlDdlTable, false);
    builder.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    builder.append(SqlInfo::SqlQuotedIdentifierCase, 3_i32);
    builder.append(SqlInfo::SqlIdentifierCase, 2_i32);
    builder.build().map_err(arrow_status)
}

fn xdbc(name: &str, data_type: XdbcDataType, size: Option<i32>) -> XdbcTypeInfo {
    XdbcTypeInfo {
        type_name: name.into(),
        data_type,
        column_size: size,
        literal_prefix: None,
        literal_suffix: None,
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: false,
        searchable: Searchable::Full,
        unsigned_attribute: Some(false),
        fixed_prec_scale: false,
        auto_increment: Some(false),
        local_type_name: Some(name.into()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type: data_type,
        datetime_subcode: None,
        num_prec_radix: None,
        interval_precision: None,
    }
}

/// The SQL types the tables use (`GetXdbcTypeInfo`).
pub fn xdbc_type_info() -> Result<XdbcTypeInfoData, Status> {
    let mut builder = XdbcTypeInfoDataBuilder::new();
    builder.append(xdbc("BOOLEAN", XdbcDataType::XdbcBit, Some(1)));
    builder.append(xdbc("TINYINT", XdbcDataType::XdbcTinyint, Some(8)));
    builder.append(xdbc("INTEGER", XdbcDataType::XdbcInteger, Some(32)));
    builder.append(xdbc("BIGINT", XdbcDataType::XdbcBigint, Some(64)));
    builder.append(xdbc("DOUBLE", XdbcDataType::XdbcDouble, Some(53)));
    builder.append(xdbc("VARCHAR", XdbcDataType::XdbcVarchar, None));
    builder.append(xdbc("DATE", XdbcDataType::XdbcDate, None));
    builder.append(xdbc("TIMESTAMP", XdbcDataType::XdbcTimestamp, None));
    builder.build().map_err(arrow_status)
}

/// An error building a metadata result is the server's fault.
pub fn arrow_status(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("building the result: {e}"))
}
