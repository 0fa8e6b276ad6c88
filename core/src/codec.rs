//! How lendfusion's tables travel inside distributed plans.
//!
//! A client plans a query against the catalog, then ships the logical plan to the coordinator,
//! which plans the stages and ships physical plans to the workers. DataFusion's protobuf codec
//! knows its own table types only; [`LendfusionLogicalCodec`] adds ours — a [`DatedTable`]
//! travels as its root URL, table name and layout and is rebuilt on the receiving node, and
//! the `lendfusion_functions()` table is rebuilt from the registrations — and hands everything
//! else to Ballista's codec, which carries Ballista's own nodes and file formats. Every role
//! must use this codec: [`crate::cluster`] installs it in the config that travels with a query.
//!
//! Physical plans travel from the coordinator to the workers. [`LendfusionPhysicalCodec`] adds
//! our one plan node, the [`ChunkedWindowExec`] (window functions evaluated a run of whole
//! partitions at a time): it travels as DataFusion's own window message — the window
//! expressions and PARTITION BY keys, its input encoded as the node's child — and everything
//! else goes to Ballista's physical codec.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, TableReference};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF, WindowUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::from_proto::parse_physical_window_expr;
use datafusion_proto::physical_plan::to_proto::serialize_physical_window_expr;
use datafusion_proto::physical_plan::{
    PhysicalExtensionCodec, PhysicalPlanDecodeContext, PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf::WindowAggExecNode;
use lendfusion_udfs::planning::chunked_window::ChunkedWindowExec;
use prost::Message;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::Layout;
use crate::tables::DatedTable;

/// Marks an encoded [`DatedTable`].
const DATED_TABLE_TAG: &[u8] = b"lendfusion.dated_table.v1:";
/// Marks an encoded [`ChunkedWindowExec`].
const CHUNKED_WINDOW_TAG: &[u8] = b"lendfusion.chunked_window.v1:";
/// Marks the encoded `lendfusion_functions()` table.
const FUNCTIONS_TABLE_TAG: &[u8] = b"lendfusion.functions_table.v1";

/// What identifies a [`DatedTable`] on every node.
#[derive(Debug, Serialize, Deserialize)]
struct DatedTableRef {
    root: String,
    table: String,
    layout: Layout,
}

/// The logical codec of every lendfusion role; delegates to Ballista's codec.
#[derive(Debug, Default)]
pub struct LendfusionLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for LendfusionLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        if let Some(body) = buf.strip_prefix(DATED_TABLE_TAG) {
            let reference: DatedTableRef = serde_json::from_slice(body).map_err(|e| {
                DataFusionError::Internal(format!("undecodable lendfusion table reference: {e}"))
            })?;
            let root = Url::parse(&reference.root).map_err(|e| {
                DataFusionError::Plan(format!("bad dataset root {}: {e}", reference.root))
            })?;
            let table = DatedTable::try_new(&root, &reference.table, reference.layout)?;
            return Ok(Arc::new(table));
        }
        if buf == FUNCTIONS_TABLE_TAG {
            return lendfusion_udfs::catalog::functions_table();
        }
        self.inner
            .try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if let Some(table) = node.downcast_ref::<DatedTable>() {
            let reference = DatedTableRef {
                root: table.root().to_string(),
                table: table.name().to_string(),
                layout: table.layout(),
            };
            buf.extend_from_slice(DATED_TABLE_TAG);
            serde_json::to_writer(&mut *buf, &reference)
                .map_err(|e| DataFusionError::Internal(format!("encode table: {e}")))?;
            return Ok(());
        }
        if node.is::<MemTable>() && node.schema() == lendfusion_udfs::catalog::schema() {
            buf.extend_from_slice(FUNCTIONS_TABLE_TAG);
            return Ok(());
        }
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.inner.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.inner.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udwf(node, buf)
    }
}

/// The physical codec of every lendfusion role; delegates to Ballista's codec.
#[derive(Debug, Default)]
pub struct LendfusionPhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for LendfusionPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(body) = buf.strip_prefix(CHUNKED_WINDOW_TAG) else {
            return self.inner.try_decode(buf, inputs, ctx, proto_converter);
        };
        let [input] = inputs else {
            return Err(DataFusionError::Internal(format!(
                "a chunked window has one input, got {}",
                inputs.len()
            )));
        };
        let node = WindowAggExecNode::decode(body)
            .map_err(|e| DataFusionError::Internal(format!("undecodable chunked window: {e}")))?;
        let decode_ctx = PhysicalPlanDecodeContext::new(ctx, self);
        let schema = input.schema();
        let window_expr = node
            .window_expr
            .iter()
            .map(|expr| parse_physical_window_expr(expr, &decode_ctx, &schema, proto_converter))
            .collect::<Result<Vec<_>>>()?;
        let chunked = ChunkedWindowExec::from_parts(
            window_expr,
            Arc::clone(input),
            !node.partition_keys.is_empty(),
        )?;
        Ok(Arc::new(chunked))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(chunked) = node.downcast_ref::<ChunkedWindowExec>() else {
            return self.inner.try_encode(node, buf, proto_converter);
        };
        let window_expr = chunked
            .window_expr()
            .iter()
            .map(|expr| serialize_physical_window_expr(expr, self, proto_converter))
            .collect::<Result<Vec<_>>>()?;
        let partition_keys = chunked
            .partition_keys()
            .iter()
            .map(|expr| proto_converter.physical_expr_to_proto(expr, self))
            .collect::<Result<Vec<_>>>()?;
        let message = WindowAggExecNode {
            input: None,
            window_expr,
            partition_keys,
            input_order_mode: None,
        };
        buf.extend_from_slice(CHUNKED_WINDOW_TAG);
        message
            .encode(buf)
            .map_err(|e| DataFusionError::Internal(format!("encode chunked window: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[test]
    fn dated_tables_round_trip() {
        let root = Url::parse("s3://bucket/panel/").expect("url");
        let table = DatedTable::try_new(&root, "lending", Layout::Day).expect("table");
        let codec = LendfusionLogicalCodec::default();
        let mut buf = vec![];
        let reference = TableReference::bare("lending");
        codec
            .try_encode_table_provider(&reference, Arc::new(table), &mut buf)
            .expect("encode");
        let ctx = SessionContext::new().task_ctx();
        let schema = crate::schema::table_schema("lending").expect("schema");
        let decoded = codec
            .try_decode_table_provider(&buf, &reference, schema.clone(), &ctx)
            .expect("decode");
        let decoded = decoded.downcast_ref::<DatedTable>().expect("a dated table");
        assert_eq!(decoded.name(), "lending");
        assert_eq!(decoded.root(), &root);
        assert_eq!(decoded.layout(), Layout::Day);
        assert_eq!(decoded.schema(), schema);
    }

    /// A chunked window travels to a worker and runs there to the same rows.
    #[tokio::test]
    async fn chunked_windows_round_trip() {
        use datafusion::physical_plan::collect;
        use datafusion_proto::bytes::{
            physical_plan_from_bytes_with_extension_codec,
            physical_plan_to_bytes_with_extension_codec,
        };

        // Plans travel in a cluster: plan them as the coordinator does.
        let config = crate::config::LendfusionConfig::default();
        let ctx = crate::session::session_context_with(
            &config,
            crate::cluster::cluster_session_config(&config),
        )
        .await
        .expect("session");
        let sql = "SELECT g, t, fwd_return(x, 1) OVER (PARTITION BY g ORDER BY t) AS f, \
                   cs_rank(x) OVER (PARTITION BY t) AS r \
                   FROM (VALUES (1, 1, 1.0), (1, 2, 2.0), (2, 1, 4.0), (2, 2, NULL), (1, 3, 3.0)) \
                   AS v(g, t, x) ORDER BY g, t";
        let plan = ctx
            .sql(sql)
            .await
            .expect("sql")
            .create_physical_plan()
            .await
            .expect("plan");
        let shown = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(false)
            .to_string();
        assert_eq!(shown.matches("ChunkedWindowExec").count(), 2, "{shown}");

        let codec = LendfusionPhysicalCodec::default();
        let bytes =
            physical_plan_to_bytes_with_extension_codec(plan.clone(), &codec).expect("encode");
        let decoded =
            physical_plan_from_bytes_with_extension_codec(&bytes, &ctx.task_ctx(), &codec)
                .expect("decode");
        let decoded_shown = datafusion::physical_plan::displayable(decoded.as_ref())
            .indent(false)
            .to_string();
        assert_eq!(decoded_shown, shown);
        let expected = collect(plan, ctx.task_ctx()).await.expect("run");
        let actual = collect(decoded, ctx.task_ctx()).await.expect("run decoded");
        assert_eq!(expected, actual);
        assert_eq!(expected.iter().map(|b| b.num_rows()).sum::<usize>(), 5);

        let mut garbage = CHUNKED_WINDOW_TAG.to_vec();
        garbage.extend_from_slice(b"\xff\xff");
        assert!(
            codec
                .try_decode(
                    &garbage,
                    &[],
                    &ctx.task_ctx(),
                    &datafusion_proto::physical_plan::DefaultPhysicalProtoConverter {}
                )
                .is_err()
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let codec = LendfusionLogicalCodec::default();
        let ctx = SessionContext::new().task_ctx();
        let schema = crate::schema::table_schema("lending").expect("schema");
        let mut buf = DATED_TABLE_TAG.to_vec();
        buf.extend_from_slice(b"{not json");
        assert!(
            codec
                .try_decode_table_provider(&buf, &TableReference::bare("x"), schema, &ctx)
                .is_err()
        );
    }

    /// The cluster's last stage merges the sorted partitions a shuffle reader brings back; the
    /// reader keeps the stage before's hash partitioning by date through the trip to the
    /// worker, so the worker's rewrite merges them run by run (whole dates), and not where
    /// the partitioning is unknown.
    #[test]
    fn final_merges_of_date_partitions_go_run_by_run_on_workers() {
        use ballista_core::execution_plans::ShuffleReaderExec;
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::physical_expr::expressions::Column;
        use datafusion::physical_expr::{LexOrdering, Partitioning, PhysicalSortExpr};
        use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
        use datafusion::physical_plan::{ExecutionPlan, displayable};
        use datafusion_proto::bytes::{
            physical_plan_from_bytes_with_extension_codec,
            physical_plan_to_bytes_with_extension_codec,
        };
        use lendfusion_udfs::planning::run_merge::with_run_merges;

        let schema = Arc::new(Schema::new(vec![
            Field::new("date", DataType::Date32, true),
            Field::new("security_id", DataType::Utf8, true),
            Field::new("x", DataType::Float64, true),
        ]));
        let date = Arc::new(Column::new("date", 0));
        let security = Arc::new(Column::new("security_id", 1));
        let ordering = LexOrdering::new(vec![
            PhysicalSortExpr::new_default(date.clone()),
            PhysicalSortExpr::new_default(security),
        ])
        .expect("ordering");
        let codec = LendfusionPhysicalCodec::default();
        let ctx = SessionContext::new().task_ctx();
        let on_worker = |partitioning: Partitioning| {
            let reader =
                ShuffleReaderExec::try_new(3, vec![vec![]; 4], schema.clone(), partitioning)
                    .expect("reader");
            let merge: Arc<dyn ExecutionPlan> = Arc::new(SortPreservingMergeExec::new(
                ordering.clone(),
                Arc::new(reader),
            ));
            let bytes = physical_plan_to_bytes_with_extension_codec(merge, &codec).expect("encode");
            let decoded = physical_plan_from_bytes_with_extension_codec(&bytes, &ctx, &codec)
                .expect("decode");
            let plan = with_run_merges(decoded).expect("rewrite");
            displayable(plan.as_ref()).indent(false).to_string()
        };
        let by_date = on_worker(Partitioning::Hash(vec![date], 4));
        assert!(by_date.starts_with("RunMergeExec"), "{by_date}");
        assert!(by_date.contains("run_keys=1"), "{by_date}");
        let unknown = on_worker(Partitioning::UnknownPartitioning(4));
        assert!(unknown.starts_with("SortPreservingMergeExec"), "{unknown}");
    }
}
