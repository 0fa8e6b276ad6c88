//! The gate: every RPC but the handshake needs a valid bearer token, checked here before the
//! Flight SQL service sees the call. The caller is put on the request for the service (results
//! and prepared statements belong to whoever created them).

use std::sync::Arc;

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo,
    SchemaResult, Ticket,
};
use lendfusion_core::ops::metrics::counted_result_stream;
use tonic::{Request, Response, Status, Streaming};

use super::auth::Authenticator;
use super::service::FrontDoorService;

/// The authenticating wrapper around [`FrontDoorService`].
#[derive(Debug, Clone)]
pub struct Gate {
    inner: Arc<FrontDoorService>,
    auth: Arc<Authenticator>,
}

impl Gate {
    /// Guard `inner` with `auth`.
    pub fn new(inner: Arc<FrontDoorService>, auth: Arc<Authenticator>) -> Self {
        Self { inner, auth }
    }

    fn admit<T>(&self, mut request: Request<T>) -> Result<Request<T>, Status> {
        let who = self.auth.check(request.metadata())?;
        request.extensions_mut().insert(who);
        Ok(request)
    }
}

type Svc = FrontDoorService;

#[tonic::async_trait]
impl FlightService for Gate {
    type HandshakeStream = <Svc as FlightService>::HandshakeStream;
    type ListFlightsStream = <Svc as FlightService>::ListFlightsStream;
    type DoGetStream = <Svc as FlightService>::DoGetStream;
    type DoPutStream = <Svc as FlightService>::DoPutStream;
    type DoExchangeStream = <Svc as FlightService>::DoExchangeStream;
    type DoActionStream = <Svc as FlightService>::DoActionStream;
    type ListActionsStream = <Svc as FlightService>::ListActionsStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        // The handshake is how a user gets a token: it checks the basic credentials itself.
        self.inner.handshake(request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let request = self.admit(request)?;
        self.inner.list_flights(request).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let request = self.admit(request)?;
        self.inner.get_flight_info(request).await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        let request = self.admit(request)?;
        self.inner.poll_flight_info(request).await
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let request = self.admit(request)?;
        self.inner.get_schema(request).await
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let request = self.admit(request)?;
        let response = self.inner.do_get(request).await?;
        Ok(response.map(|stream| Box::pin(counted_result_stream(stream)) as Self::DoGetStream))
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let request = self.admit(request)?;
        self.inner.do_put(request).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let request = self.admit(request)?;
        self.inner.do_exchange(request).await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let request = self.admit(request)?;
        self.inner.do_action(request).await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let request = self.admit(request)?;
        self.inner.list_actions(request).await
    }
}
