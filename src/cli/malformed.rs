//! A request body that is not the method's protobuf message is the
//! caller's error. tonic's codec answers it with INTERNAL (gRPC's status
//! guide reserves INTERNAL for broken invariants of the server); this layer
//! turns that answer into INVALID_ARGUMENT, with tonic's message, on every
//! service of a port, Envoy's included (its codec is not ours to change).
//!
//! The decode error is answered before the handler runs, as a
//! trailers-only response: the status is in the response headers, so the
//! layer reads headers only and never touches a body.
use tonic::codegen::http::{HeaderValue, Response};
use tower::layer::util::{Identity, Stack};
use tower::util::MapResponseLayer;

/// A gRPC server with [`layer`] on it.
pub(crate) type Layered = Stack<
    MapResponseLayer<fn(Response<tonic::body::Body>) -> Response<tonic::body::Body>>,
    Identity,
>;

/// How tonic's prost codec begins the message of a decode error.
const DECODE_ERROR: &[&[u8]] = &[
    b"failed to decode Protobuf message",
    // grpc-message is percent-encoded.
    b"failed%20to%20decode%20Protobuf%20message",
];

pub(crate) fn layer<B>() -> MapResponseLayer<fn(Response<B>) -> Response<B>> {
    MapResponseLayer::new(as_invalid_argument::<B>)
}

fn as_invalid_argument<B>(mut response: Response<B>) -> Response<B> {
    let headers = response.headers();
    let internal = headers
        .get("grpc-status")
        .is_some_and(|s| s.as_bytes() == b"13");
    let undecodable = internal
        && headers.get("grpc-message").is_some_and(|m| {
            DECODE_ERROR
                .iter()
                .any(|prefix| m.as_bytes().starts_with(prefix))
        });
    if undecodable {
        // INVALID_ARGUMENT
        response
            .headers_mut()
            .insert("grpc-status", HeaderValue::from_static("3"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: &'static str, message: &'static str) -> Response<()> {
        let mut r = Response::new(());
        r.headers_mut()
            .insert("grpc-status", HeaderValue::from_static(status));
        r.headers_mut()
            .insert("grpc-message", HeaderValue::from_static(message));
        r
    }

    #[test]
    fn only_a_decode_error_becomes_invalid_argument() {
        let cases = [
            (
                "13",
                "failed%20to%20decode%20Protobuf%20message: buffer underflow",
                "3",
            ),
            (
                "13",
                "failed to decode Protobuf message: invalid wire type",
                "3",
            ),
            ("13", "the state lock is poisoned", "13"),
            ("14", "failed%20to%20decode%20Protobuf%20message", "14"),
            ("0", "", "0"),
        ];
        for (status, message, want) in cases {
            let r = as_invalid_argument(answer(status, message));
            assert_eq!(r.headers()["grpc-status"], want, "{status} {message}");
        }
    }
}
