//! A client's credential for a node's gRPC ports: a bearer token (JWT) or
//! tenant API key, sent as `authorization: Bearer …` on every call.
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// A channel whose calls carry a [`Bearer`] credential.
pub type AuthChannel = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <credential>` to each call (nothing when
/// empty, for a node with `--data-plane-auth off`).
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Bearer(<credential>)"
        } else {
            "Bearer(none)"
        })
    }
}

impl Bearer {
    /// A token or API key; refused if it cannot be a metadata value.
    pub fn new(credential: &str) -> Result<Bearer, Status> {
        format!("Bearer {}", credential.trim())
            .parse()
            .map(|v| Bearer(Some(v)))
            .map_err(|_| Status::invalid_argument("the credential is not printable ASCII"))
    }

    /// No credential.
    pub fn none() -> Bearer {
        Bearer(None)
    }

    /// `channel` with this credential on every call.
    pub fn on(&self, channel: Channel) -> AuthChannel {
        InterceptedService::new(channel, self.clone())
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}
