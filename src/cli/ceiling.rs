//! `quotad ceiling`: the empty server that `quotad bench --ceiling` measures
//! against. Same stack as a node's gRPC port (tonic on tokio, the same
//! protos), no logic: Envoy's `ShouldRateLimit` answers OK for every
//! descriptor, and `Check`, `Increment` and `Batch` answer "allowed" (`Stream` too, one answer per request). What a
//! node reaches under a load, divided by what this reaches under the same
//! load, is the share of the transport's ceiling the node achieves.
use crate::cli::out::outln;
use clap::Args;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use quotad_proto::v1 as pb;
use quotad_proto::v1::quota_service_server::{QuotaService, QuotaServiceServer};
use std::net::SocketAddr;
use tonic::{Request, Response, Status};

#[derive(Args, Debug)]
pub struct CeilingArgs {
    /// Where to listen (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

struct Empty;

fn unsupported() -> Status {
    Status::unimplemented(
        "the ceiling server answers Check, Increment, Batch, Stream and ShouldRateLimit only",
    )
}

fn allowed() -> pb::Decision {
    pb::Decision {
        allowed: true,
        verdict: pb::Verdict::Allowed as i32,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl RateLimitService for Empty {
    async fn should_rate_limit(
        &self,
        req: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let n = req.get_ref().descriptors.len();
        Ok(Response::new(RateLimitResponse {
            overall_code: Code::Ok as i32,
            statuses: vec![
                DescriptorStatus {
                    code: Code::Ok as i32,
                    ..Default::default()
                };
                n
            ],
            ..Default::default()
        }))
    }
}

#[tonic::async_trait]
impl QuotaService for Empty {
    async fn check(&self, _: Request<pb::CheckRequest>) -> Result<Response<pb::Decision>, Status> {
        Ok(Response::new(allowed()))
    }

    async fn increment(
        &self,
        _: Request<pb::IncrementRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        Ok(Response::new(allowed()))
    }

    async fn batch(
        &self,
        req: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        let n = req.get_ref().items.len();
        Ok(Response::new(pb::BatchResponse {
            results: vec![
                pb::BatchResult {
                    result: Some(pb::batch_result::Result::Decision(allowed())),
                };
                n
            ],
        }))
    }

    type StreamStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::StreamResponse, Status>> + Send + 'static>,
    >;

    async fn stream(
        &self,
        req: Request<tonic::Streaming<pb::StreamRequest>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        use futures::StreamExt;
        Ok(Response::new(Box::pin(req.into_inner().map(|r| {
            r.map(|r| pb::StreamResponse {
                id: r.id,
                result: Some(pb::BatchResult {
                    result: Some(pb::batch_result::Result::Decision(allowed())),
                }),
            })
        }))))
    }

    async fn reserve(
        &self,
        _: Request<pb::ReserveRequest>,
    ) -> Result<Response<pb::ReserveResponse>, Status> {
        Err(unsupported())
    }

    async fn settle(
        &self,
        _: Request<pb::SettleRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        Err(unsupported())
    }

    async fn release(
        &self,
        _: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        Err(unsupported())
    }

    async fn get_usage(
        &self,
        _: Request<pb::GetUsageRequest>,
    ) -> Result<Response<pb::GetUsageResponse>, Status> {
        Err(unsupported())
    }

    async fn check_feature(
        &self,
        _: Request<pb::CheckFeatureRequest>,
    ) -> Result<Response<pb::CheckFeatureResponse>, Status> {
        Err(unsupported())
    }

    async fn evaluate_flags(
        &self,
        _: Request<pb::EvaluateFlagsRequest>,
    ) -> Result<Response<pb::EvaluateFlagsResponse>, Status> {
        Err(unsupported())
    }
}

pub async fn run(a: CeilingArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(a.listen).await?;
    let addr = listener.local_addr()?;
    outln!("quotad ceiling listening grpc={addr}")?;
    tonic::transport::Server::builder()
        .add_service(RateLimitServiceServer::new(Empty))
        .add_service(QuotaServiceServer::new(Empty))
        .serve_with_incoming_shutdown(
            super::listen::no_delay(listener, quotad_engine::idle::DEFAULT_IDLE),
            super::listen::shutdown_signal(),
        )
        .await?;
    Ok(())
}
