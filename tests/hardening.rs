//! The doors' inputs: a malformed gRPC message on any port is
//! INVALID_ARGUMENT (not INTERNAL), `/metrics` needs a platform credential
//! unless it is served on an address of its own, and a node's data dir is
//! private to its user.
mod common;

use bytes::{Buf, BufMut};
use common::{Node, create_tenant, token_for};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Sends whatever bytes it is given as the message; reads replies raw.
#[derive(Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

/// `bytes` as the request message of `method` at `url`, with `bearer`.
async fn raw_call(url: &str, method: &'static str, bearer: &str, bytes: Vec<u8>) -> Code {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(bytes);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
    match grpc.unary(req, path, Raw).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_is_invalid_argument_on_every_port() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = create_tenant(&node, "malformed", "FREE").await;
    let service = common::service_token();
    // A field 1 of wire type 7 (no such type), a length past the end, a
    // varint longer than ten bytes.
    let mut overlong = vec![0x08];
    overlong.extend([0xFF; 11]);
    let garbage: [Vec<u8>; 3] = [vec![0x0F, 1, 2], vec![0x0A, 0x7F, 1], overlong];
    for method in [
        "/quotad.v1.QuotaService/Check",
        "/quotad.v1.QuotaService/Increment",
        "/quotad.v1.QuotaService/Batch",
        "/quotad.v1.QuotaService/Reserve",
        "/quotad.v1.QuotaService/GetUsage",
        "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
        "/quotad.cluster.v1.Cluster/Status",
    ] {
        for bytes in &garbage {
            let got = raw_call(&node.grpc, method, &service, bytes.clone()).await;
            assert_eq!(got, Code::InvalidArgument, "{method} {bytes:?}");
        }
    }
    // The peer port, for a caller with the cluster's key.
    let key = quotad_engine::peer_auth::PeerAuth::at(&node.data_dir, None)
        .unwrap()
        .key()
        .unwrap();
    let peer_bearer = key.credential();
    for method in [
        "/quotad.cluster.v1.Cluster/Forward",
        "/quotad.raft.v1.RaftTransport/AppendEntries",
    ] {
        let got = raw_call(
            &format!("http://{}", node.peer),
            method,
            &peer_bearer,
            garbage[1].clone(),
        )
        .await;
        assert_eq!(got, Code::InvalidArgument, "{method}");
    }
    // The node serves on, and nothing was spent.
    assert_eq!(common::api_requests_used(&node, &tenant).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_platform_credential_unless_served_apart() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = Node::local_args();
    args.extend(["--metrics-addr".into(), "127.0.0.1:0".into()]);
    let node = Node::start_with(dir.path(), &args);
    let tenant = create_tenant(&node, "metered", "FREE").await;
    let get = |url: String, token: Option<String>| async move {
        let mut r = common::client().get(url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let rest = node.url("/metrics");
    let (status, body) = get(rest.clone(), None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(get(rest.clone(), Some("nonsense".into())).await.0, 401);
    let owner = token_for("owner", Some(&tenant), &["owner"], 600);
    let (status, body) = get(rest.clone(), Some(owner)).await;
    assert_eq!(status, 403, "{body}");
    for token in [common::service_token(), common::operator()] {
        let (status, body) = get(rest.clone(), Some(token)).await;
        assert_eq!(status, 200);
        assert!(body.contains("tenant_count"), "{body}");
    }
    // Its own address: no credential, and nothing else served there.
    let own = node.metrics.clone().expect("the metrics address");
    let (status, body) = get(format!("{own}/metrics"), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("tenant_count"), "{body}");
    assert_eq!(get(format!("{own}/api/v1/tenants"), None).await.0, 404);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_its_data_dir_private() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    // A data dir as an older release (or a loose umask) left it.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("notes"), b"operator notes").unwrap();
    std::fs::set_permissions(dir.join("notes"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let node = Node::start(&dir);
    create_tenant(&node, "private", "FREE").await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), want, "{}", path.display());
        files += 1;
    }
    // At least the database, the cluster key and the notes.
    assert!(files >= 3, "{files} entries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_on_every_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut args = Node::local_args();
    args.extend(["--idle-timeout-secs".into(), "1".into()]);
    let node = Node::start_with(dir.path(), &args);
    let addr = |url: &str| url.trim_start_matches("http://").to_string();
    // Closed between one and two timeouts after the last byte: read
    // returns end of file (or a reset) well before the bound below.
    let closed_within = |mut socket: tokio::net::TcpStream| async move {
        let started = std::time::Instant::now();
        let mut buf = vec![0u8; 4096];
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(10), socket.read(&mut buf))
                .await
                .expect("the node closed the connection")
            {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {} // the answer to what was sent, or an HTTP/2 frame
            }
        }
    };
    for port in [addr(&node.grpc), addr(&node.http), node.peer.clone()] {
        // Never a byte.
        let silent = tokio::net::TcpStream::connect(&port).await.unwrap();
        let took = closed_within(silent).await;
        assert!(
            took <= std::time::Duration::from_secs(3),
            "{port}: {took:?}"
        );
    }
    // An HTTP/1.1 keep-alive connection, answered, then left alone.
    let mut kept = tokio::net::TcpStream::connect(addr(&node.http))
        .await
        .unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let took = closed_within(kept).await;
    assert!(took <= std::time::Duration::from_secs(3), "{took:?}");
    // The node serves new connections as ever.
    let r = common::client()
        .get(node.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A long bad value is quoted by a short prefix at most: an error never
/// echoes a caller's megabyte back (gRPC and REST).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_quote_at_most_a_short_prefix_of_a_bad_value() {
    use quotad_proto::v1 as pb;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let tenant = create_tenant(&node, "long-values", "FREE").await;
    let long = "x".repeat(100_000);
    let mut grpc = node.grpc().await;
    let mut answers = Vec::new();
    answers.push(
        grpc.check(pb::CheckRequest {
            tenant_id: long.clone(),
            quota: "api_requests".into(),
            amount: 1,
            ..Default::default()
        })
        .await
        .unwrap_err(),
    );
    answers.push(
        grpc.check(pb::CheckRequest {
            tenant_id: tenant.clone(),
            quota: long.clone(),
            amount: 1,
            ..Default::default()
        })
        .await
        .unwrap_err(),
    );
    answers.push(
        grpc.settle(pb::SettleRequest {
            tenant_id: tenant.clone(),
            reservation_id: long.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
    );
    for status in &answers {
        assert!(
            status.message().len() < 400,
            "{:?}: {} bytes: {}…",
            status.code(),
            status.message().len(),
            &status.message()[..200.min(status.message().len())]
        );
    }
    // REST: a long quota name and a long tenant id (as long as a URL may be).
    let long = "x".repeat(5_000);
    for path in [
        format!("/api/v1/tenants/{tenant}/quotas/{long}"),
        format!("/api/v1/tenants/{long}"),
    ] {
        let r = common::http().get(node.url(&path)).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert!((400..500).contains(&status), "{status}");
        assert!(body.len() < 600, "{status}: {} bytes", body.len());
    }
    // Bodies: a long slug, tier, timezone, owner email.
    for body in [
        serde_json::json!({"name": "n", "slug": long, "tier": "FREE"}),
        serde_json::json!({"name": "n", "slug": "fine-slug", "tier": long}),
        serde_json::json!({"name": "n", "slug": "fine-slug-2", "tier": "FREE", "timezone": long}),
        serde_json::json!({"name": "n", "slug": "fine-slug-3", "tier": "FREE", "ownerEmail": long}),
    ] {
        let r = common::http()
            .post(node.url("/api/v1/tenants"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(status, 400, "{}", &text[..text.len().min(300)]);
        assert!(text.len() < 600, "{} bytes", text.len());
    }
}
