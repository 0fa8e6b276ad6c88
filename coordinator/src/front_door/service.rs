//! The Flight SQL service: statements, prepared statements, metadata, our commands and
//! actions. Authentication happens before any of this, in [`super::gate`].

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Command, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandStatementQuery, CommandStatementUpdate,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket, flight_service_server::FlightService,
};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::auth::{Authenticator, Principal};
use super::commands::{self, ACTIONS};
use super::jobs::{JobRunner, new_handle};
use super::metadata;
use super::results::{partition_flight, result_flight, result_stream, worker_endpoints};
use super::statements::{ensure_read_only, plan_sql, status_of};
use crate::Scheduler;
use lendfusion_core::results::ResultPartition;
use lendfusion_core::results::passthrough::can_pass_through;
use lendfusion_core::results::ticket::TicketKey;
use std::time::Duration;

type DoGetStream = <FrontDoorService as FlightService>::DoGetStream;

/// A statement prepared by a client, with its bound parameters.
#[derive(Debug, Clone)]
struct Prepared {
    plan: LogicalPlan,
    parameters: Option<Vec<ScalarValue>>,
    owner: Principal,
}

/// Flight SQL on the coordinator.
pub struct FrontDoorService {
    ctx: Arc<SessionContext>,
    scheduler: Scheduler,
    runner: JobRunner,
    auth: Arc<Authenticator>,
    allow_writes: bool,
    prepared: Mutex<HashMap<String, Prepared>>,
    sql_info: SqlInfoData,
    xdbc_info: XdbcTypeInfoData,
    /// Signs result tickets for the workers (`server.result_endpoints = "workers"`), and
    /// checks the ones clients bring here.
    tickets: Option<TicketKey>,
}

impl std::fmt::Debug for FrontDoorService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontDoorService").finish_non_exhaustive()
    }
}

impl FrontDoorService {
    /// The service on a session context of the scheduler.
    pub fn new(
        ctx: Arc<SessionContext>,
        scheduler: Scheduler,
        runner: JobRunner,
        auth: Arc<Authenticator>,
        allow_writes: bool,
        tickets: Option<TicketKey>,
    ) -> Result<Self, Status> {
        Ok(Self {
            ctx,
            scheduler,
            runner,
            auth,
            allow_writes,
            prepared: Mutex::new(HashMap::new()),
            sql_info: metadata::sql_info()?,
            xdbc_info: metadata::xdbc_type_info()?,
            tickets,
        })
    }

    /// Plan, check and run `plan` on the cluster; the FlightInfo points at its result.
    async fn run_plan(
        &self,
        plan: LogicalPlan,
        name: &str,
        who: Principal,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let local = match ensure_read_only(&plan) {
            Err(denied) if !self.allow_writes => return Err(denied),
            // An administrator's statement (DDL, SET, COPY): run here, not on the workers.
            Err(_) => true,
            // The catalog's own tables (SHOW TABLES, information_schema) live here.
            Ok(()) => reads_only_catalog(&plan),
        };
        if local {
            let df = self
                .ctx
                .execute_logical_plan(plan)
                .await
                .map_err(|e| status_of(&e))?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await.map_err(|e| status_of(&e))?;
            let handle = self.runner.keep_local(schema.clone(), batches, who)?;
            let ticket = TicketStatementQuery {
                statement_handle: handle.into(),
            };
            return flight_info(&schema, ticket.as_any().encode_to_vec(), descriptor);
        }
        let (schema, handle) = self.run_read(plan, name, who.clone()).await?;
        if let Some(key) = &self.tickets {
            let result = self.runner.result(&handle, &who)?;
            if can_pass_through(&schema) && !result.partitions.is_empty() {
                let lifetime = Duration::from_secs(self.runner.result_ttl_seconds());
                let endpoints = worker_endpoints(&result.partitions, key, lifetime)?;
                let info = endpoints
                    .into_iter()
                    .fold(FlightInfo::new(), FlightInfo::with_endpoint)
                    .try_with_schema(&schema)
                    .map_err(|e| Status::internal(format!("cannot encode the schema: {e}")))?
                    .with_ordered(true)
                    .with_descriptor(descriptor);
                return Ok(Response::new(info));
            }
        }
        let ticket = TicketStatementQuery {
            statement_handle: handle.into(),
        };
        flight_info(&schema, ticket.as_any().encode_to_vec(), descriptor)
    }

    /// Queries running and finished results no client has started to fetch yet.
    pub fn pending(&self) -> usize {
        self.runner.pending()
    }

    /// Run a read-only `plan` on the cluster: the result's schema and its handle.
    async fn run_read(
        &self,
        plan: LogicalPlan,
        name: &str,
        who: Principal,
    ) -> Result<(SchemaRef, String), Status> {
        let physical = self
            .ctx
            .state()
            .create_physical_plan(&plan)
            .await
            .map_err(|e| status_of(&e))?;
        let schema = physical.schema();
        let handle = self.runner.run(&self.ctx, physical, name, who).await?;
        Ok((schema, handle))
    }

    async fn run_sql(
        &self,
        sql: &str,
        who: Principal,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let plan = plan_sql(&self.ctx, sql).await?;
        self.run_plan(plan, &job_name(sql), who, descriptor).await
    }

    fn prepared(&self, handle: &[u8], who: &Principal) -> Result<(String, Prepared), Status> {
        let handle = String::from_utf8(handle.to_vec())
            .map_err(|_| Status::invalid_argument("bad prepared statement handle"))?;
        let prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        match prepared.get(&handle) {
            Some(p) if &p.owner == who => Ok((handle, p.clone())),
            _ => Err(Status::not_found(
                "no such prepared statement (closed, or created by another client)",
            )),
        }
    }
}

/// The cluster as the report's engine: SQL through the same path as client statements.
struct ClusterEngine<'a> {
    service: &'a FrontDoorService,
    who: Principal,
}

#[async_trait::async_trait]
impl lendfusion_report::SqlRunner for ClusterEngine<'_> {
    async fn collect(&self, sql: &str) -> datafusion::error::Result<Vec<RecordBatch>> {
        let to_df = |s: Status| datafusion::error::DataFusionError::Plan(s.message().to_string());
        let service = self.service;
        let plan = plan_sql(&service.ctx, sql).await.map_err(to_df)?;
        // The factor is the client's SQL: the read-only rule holds here too.
        ensure_read_only(&plan).map_err(to_df)?;
        let (_, handle) = service
            .run_read(plan, "FactorReport", self.who.clone())
            .await
            .map_err(to_df)?;
        let result = service.runner.result(&handle, &self.who).map_err(to_df)?;
        result_stream(result).try_collect().await
    }
}

/// Whether every table `plan` scans is in `information_schema` (and it scans one).
fn reads_only_catalog(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let (mut catalog, mut other) = (0, 0);
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if scan.table_name.schema() == Some("information_schema") {
                catalog += 1;
            } else {
                other += 1;
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    catalog > 0 && other == 0
}

/// The caller the gate put on the request.
fn caller<T>(request: &Request<T>) -> Principal {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .unwrap_or(Principal::Anonymous)
}

fn flight_info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("cannot encode the schema: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

fn batch_response(schema: SchemaRef, batch: RecordBatch) -> Response<DoGetStream> {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::once(async { Ok(batch) }))
        .map_err(Status::from);
    Response::new(Box::pin(stream))
}

fn ipc_schema(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &Default::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(message.0)
}

/// A short job name from the statement.
fn job_name(sql: &str) -> String {
    let flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.chars().take(80).collect()
}

fn one_result(body: Vec<u8>) -> Response<<FrontDoorService as FlightService>::DoActionStream> {
    let result = arrow_flight::Result { body: body.into() };
    Response::new(Box::pin(futures::stream::once(async { Ok(result) })))
}

#[tonic::async_trait]
impl FlightSqlService for FrontDoorService {
    type FlightService = FrontDoorService;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let token = self.auth.handshake(request.metadata())?;
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let stream: Pin<Box<dyn Stream<Item = _> + Send>> =
            Box::pin(futures::stream::once(async { Ok(reply) }));
        let mut response = Response::new(stream);
        if !token.is_empty() {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::internal("token is not a header value"))?;
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let who = caller(&request);
        self.run_sql(&query.query, who, request.into_inner()).await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let who = caller(&request);
        let (handle, prepared) = self.prepared(&query.prepared_statement_handle, &who)?;
        let plan = match prepared.parameters {
            Some(values) => prepared
                .plan
                .with_param_values(values)
                .map_err(|e| status_of(&e))?,
            None => prepared.plan,
        };
        let name = format!("prepared {handle}");
        self.run_plan(plan, &name, who, request.into_inner()).await
    }

    async fn get_flight_info_fallback(
        &self,
        command: Command,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let who = caller(&request);
        let any = command.into_any();
        match commands::Command::decode(&any)? {
            Some(commands::Command::FactorPanel(panel)) => {
                let sql = commands::factor_panel_sql(&panel)?;
                let plan = plan_sql(&self.ctx, &sql).await?;
                self.run_plan(plan, "FactorPanel", who, request.into_inner())
                    .await
            }
            Some(commands::Command::FactorReport(report)) => {
                let (options, table) = commands::report_options(&report)?;
                let engine = ClusterEngine {
                    service: self,
                    who: who.clone(),
                };
                let tables = lendfusion_report::run(&engine, &options)
                    .await
                    .map_err(|e| status_of(&e))?;
                let batches = commands::report_table(tables, &table)?;
                let schema = batches
                    .first()
                    .map(|b| b.schema())
                    .ok_or_else(|| Status::internal("empty report table"))?;
                let handle = self.runner.keep_local(schema.clone(), batches, who)?;
                let ticket = TicketStatementQuery {
                    statement_handle: handle.into(),
                };
                flight_info(
                    &schema,
                    ticket.as_any().encode_to_vec(),
                    request.into_inner(),
                )
            }
            None => Err(Status::invalid_argument(format!(
                "unknown command {:?}: send a Flight SQL command or a lendfusion.v1 message \
                 (FactorPanel) packed in google.protobuf.Any",
                any.type_url
            ))),
        }
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: arrow_flight::sql::Any,
    ) -> Result<Response<DoGetStream>, Status> {
        if message.type_url != lendfusion_core::results::RESULT_TICKET_TYPE {
            return Err(Status::invalid_argument(format!(
                "unknown ticket type {:?}: pass the ticket of a FlightInfo endpoint as it came",
                message.type_url
            )));
        }
        let key = self.tickets.as_ref().ok_or_else(|| {
            Status::permission_denied(
                "this coordinator signs no result tickets (server.result_endpoints is not \
                 \"workers\")",
            )
        })?;
        let action = key
            .open(&message.value)
            .map_err(|e| Status::permission_denied(e.to_string()))?;
        let partition = ResultPartition::from_action(action).map_err(Status::invalid_argument)?;
        Ok(Response::new(partition_flight(partition)))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let who = caller(&request);
        let handle = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("bad ticket"))?;
        let result = self.runner.result(&handle, &who)?;
        Ok(Response::new(result_flight(result)))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let schema = query.into_builder().schema();
        Ok(batch_response(schema, metadata::catalogs(&self.ctx)?))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(batch_response(schema, metadata::schemas(&self.ctx, query)?))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::tables_schema(query.clone());
        flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let schema = metadata::tables_schema(query.clone());
        let batch = metadata::tables(&self.ctx, query).await?;
        Ok(batch_response(schema, batch))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let batch = metadata::table_types()?;
        flight_info(
            &batch.schema(),
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let batch = metadata::table_types()?;
        Ok(batch_response(batch.schema(), batch))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.sql_info).schema();
        flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let builder = query.into_builder(&self.sql_info);
        let schema = builder.schema();
        Ok(batch_response(
            schema,
            builder.build().map_err(metadata::arrow_status)?,
        ))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder(&self.xdbc_info).schema();
        flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let builder = query.into_builder(&self.xdbc_info);
        let schema = builder.schema();
        Ok(batch_response(
            schema,
            builder.build().map_err(metadata::arrow_status)?,
        ))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let plan = plan_sql(&self.ctx, &command.query).await?;
        if ensure_read_only(&plan).is_ok() {
            return Err(Status::invalid_argument(
                "this statement does not update anything: send it as a query",
            ));
        }
        if !self.allow_writes {
            ensure_read_only(&plan)?;
        }
        let df = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| status_of(&e))?;
        let batches = df.collect().await.map_err(|e| status_of(&e))?;
        Ok(batches.iter().map(|b| b.num_rows() as i64).sum())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let who = caller(&request);
        let (handle, _) = self.prepared(&query.prepared_statement_handle, &who)?;
        let stream = request.into_inner().map_err(FlightError::from);
        let batches: Vec<RecordBatch> =
            arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(stream)
                .try_collect()
                .await
                .map_err(|e| Status::invalid_argument(format!("bad parameters: {e}")))?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let batch = batches.iter().find(|b| b.num_rows() > 0);
        let values = match (rows, batch) {
            (1, Some(batch)) => batch
                .columns()
                .iter()
                .map(|c| ScalarValue::try_from_array(c, 0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| status_of(&e))?,
            (0, _) => vec![],
            (n, _) => {
                return Err(Status::invalid_argument(format!(
                    "bind one row of parameters, not {n}"
                )));
            }
        };
        let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = prepared.get_mut(&handle) {
            p.parameters = Some(values);
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.into_bytes().into()),
        })
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let who = caller(&request);
        let plan = plan_sql(&self.ctx, &query.query).await?;
        if !self.allow_writes {
            ensure_read_only(&plan)?;
        }
        let dataset_schema = ipc_schema(plan.schema().as_arrow())?;
        let mut parameters: Vec<(String, arrow::datatypes::DataType)> = plan
            .get_parameter_types()
            .map_err(|e| status_of(&e))?
            .into_iter()
            .map(|(name, ty)| (name, ty.unwrap_or(arrow::datatypes::DataType::Null)))
            .collect();
        parameters.sort_by_key(|(name, _)| {
            name.trim_start_matches('$')
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        let parameter_schema = Schema::new(
            parameters
                .into_iter()
                .map(|(name, ty)| arrow::datatypes::Field::new(name, ty, true))
                .collect::<Vec<_>>(),
        );
        let handle = new_handle()?;
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                handle.clone(),
                Prepared {
                    plan,
                    parameters: None,
                    owner: who,
                },
            );
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema,
            parameter_schema: ipc_schema(&parameter_schema)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let who = caller(&request);
        let (handle, _) = self.prepared(&query.prepared_statement_handle, &who)?;
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&handle);
        Ok(())
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        Some(
            ACTIONS
                .iter()
                .map(|(name, description)| {
                    Ok(ActionType {
                        r#type: name.to_string(),
                        description: description.to_string(),
                    })
                })
                .collect(),
        )
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        match request.get_ref().r#type.as_str() {
            "list-functions" => Ok(one_result(commands::list_functions())),
            "list-tables" => Ok(one_result(commands::list_tables(&self.ctx).await?)),
            "health" => {
                let workers = crate::registered_workers(&self.scheduler).await;
                Ok(one_result(commands::health(
                    workers,
                    self.scheduler.is_ready(),
                )))
            }
            other => Err(Status::invalid_argument(format!(
                "unknown action {other:?}; actions: {}",
                ACTIONS.map(|(n, _)| n).join(", ")
            ))),
        }
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
