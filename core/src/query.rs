//! Running SQL on a lendfusion session, with errors that name the bad file behind them.

use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::physical_plan::SendableRecordBatchStream;

use crate::diagnose::explain_error;

/// Plan `sql` and start executing it as a stream of record batches.
pub async fn stream_sql(
    ctx: &SessionContext,
    sql: &str,
) -> Result<SendableRecordBatchStream, DataFusionError> {
    let df = ctx.sql(sql).await?;
    match df.execute_stream().await {
        Ok(stream) => Ok(stream),
        Err(e) => Err(explain_error(ctx, e).await),
    }
}

/// Run `sql` and collect every batch.
pub async fn collect_sql(
    ctx: &SessionContext,
    sql: &str,
) -> Result<Vec<RecordBatch>, DataFusionError> {
    use futures::TryStreamExt;
    let stream = stream_sql(ctx, sql).await?;
    match stream.try_collect().await {
        Ok(batches) => Ok(batches),
        Err(e) => Err(explain_error(ctx, e).await),
    }
}
