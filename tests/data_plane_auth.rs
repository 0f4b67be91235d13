//! The data plane's doors, through real sockets: every QuotaService method
//! and Envoy's ShouldRateLimit, called with each kind of credential, get
//! the gRPC code that credential must get, and a refused call changes
//! nothing. Tenant API keys over REST: shown once, stored as a hash,
//! scoped, rotated with a grace period, revoked within a second.
mod common;

use common::{Node, create_tenant, rest_call, token_for};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use quotad_proto::credential::Bearer;
use quotad_proto::v1 as pb;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tonic::Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    Check,
    Increment,
    Batch,
    Stream,
    Reserve,
    Settle,
    Release,
    GetUsage,
    ShouldRateLimit,
}

const RPCS: [Rpc; 9] = [
    Rpc::Check,
    Rpc::Increment,
    Rpc::Batch,
    Rpc::Stream,
    Rpc::Reserve,
    Rpc::Settle,
    Rpc::Release,
    Rpc::GetUsage,
    Rpc::ShouldRateLimit,
];

impl Rpc {
    /// The scope a tenant key needs for it.
    fn scope(self) -> &'static str {
        match self {
            Rpc::Check => "check",
            Rpc::Increment | Rpc::Batch | Rpc::Stream | Rpc::ShouldRateLimit => "increment",
            Rpc::Reserve | Rpc::Settle | Rpc::Release => "reserve",
            Rpc::GetUsage => "usage:read",
        }
    }
}

/// Make a key of `tenant` over REST (as the operator); its text.
async fn make_key(node: &Node, tenant: &str, name: &str, scopes: &[&str]) -> (String, String) {
    let (status, body) = rest_call(
        node,
        Some(&common::operator()),
        &Method::POST,
        &format!("/api/v1/tenants/{tenant}/api-keys"),
        &Some(json!({"name": name, "scopes": scopes})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["data"]["key"].as_str().unwrap().to_string(),
        body["data"]["apiKey"]["id"].as_str().unwrap().to_string(),
    )
}

fn bearer(text: &str) -> Bearer {
    Bearer::new(text).unwrap()
}

/// A reservation of one gpu hour, made by the platform service.
async fn reservation(node: &Node, tenant: &str) -> String {
    node.grpc()
        .await
        .reserve(pb::ReserveRequest {
            tenant_id: tenant.into(),
            quota: "gpu_hours".into(),
            amount: 1,
            ttl_ms: 600_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .reservation_id
}

/// Call `rpc` for `tenant` with `bearer`; its code (`Ok` when answered).
async fn call(node: &Node, bearer: Bearer, rpc: Rpc, tenant: &str, reservation: &str) -> Code {
    let mut c = common::grpc_with(&node.grpc, bearer.clone()).await;
    let increment = pb::IncrementRequest {
        tenant_id: tenant.into(),
        quota: "api_requests".into(),
        amount: 1,
        ..Default::default()
    };
    let result = match rpc {
        Rpc::Check => c
            .check(pb::CheckRequest {
                tenant_id: tenant.into(),
                quota: "api_requests".into(),
                amount: 1,
                ..Default::default()
            })
            .await
            .map(drop),
        Rpc::Increment => c.increment(increment).await.map(drop),
        Rpc::Batch => c
            .batch(pb::BatchRequest {
                items: vec![pb::BatchItem {
                    item: Some(pb::batch_item::Item::Increment(increment)),
                }],
                consistency: 0,
            })
            .await
            .map(|r| {
                let r = r.into_inner();
                assert!(matches!(
                    r.results[0].result,
                    Some(pb::batch_result::Result::Decision(_))
                ));
            }),
        Rpc::Stream => {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tx.send(pb::StreamRequest {
                id: 1,
                item: Some(pb::BatchItem {
                    item: Some(pb::batch_item::Item::Increment(increment)),
                }),
            })
            .await
            .unwrap();
            match c
                .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
            {
                Ok(resp) => {
                    let mut answers = resp.into_inner();
                    let first = answers.message().await;
                    drop(tx);
                    first.map(|m| assert_eq!(m.expect("an answer").id, 1))
                }
                Err(s) => Err(s),
            }
        }
        Rpc::Reserve => c
            .reserve(pb::ReserveRequest {
                tenant_id: tenant.into(),
                quota: "gpu_hours".into(),
                amount: 1,
                ttl_ms: 600_000,
                ..Default::default()
            })
            .await
            .map(drop),
        Rpc::Settle => c
            .settle(pb::SettleRequest {
                tenant_id: tenant.into(),
                reservation_id: reservation.into(),
                actual: 1,
                consistency: 0,
            })
            .await
            .map(drop),
        Rpc::Release => c
            .release(pb::ReleaseRequest {
                tenant_id: tenant.into(),
                reservation_id: reservation.into(),
                consistency: 0,
            })
            .await
            .map(drop),
        Rpc::GetUsage => c
            .get_usage(pb::GetUsageRequest {
                tenant_id: tenant.into(),
                quota: String::new(),
            })
            .await
            .map(drop),
        Rpc::ShouldRateLimit => {
            let channel = tonic::transport::Endpoint::from_shared(node.grpc.clone())
                .unwrap()
                .connect()
                .await
                .unwrap();
            RateLimitServiceClient::new(bearer.on(channel))
                .should_rate_limit(RateLimitRequest {
                    domain: "gw".into(),
                    descriptors: vec![RateLimitDescriptor {
                        entries: vec![
                            Entry {
                                key: "tenant_id".into(),
                                value: tenant.into(),
                            },
                            Entry {
                                key: "quota".into(),
                                value: "api_requests".into(),
                            },
                        ],
                        ..Default::default()
                    }],
                    hits_addend: 1,
                })
                .await
                .map(drop)
        }
    };
    match result {
        Ok(()) => Code::Ok,
        Err(s) => s.code(),
    }
}

/// What the tenant has spent, and whether its reservation is still held.
async fn spent(node: &Node, tenant: &str) -> (u64, u64) {
    let u = node
        .grpc()
        .await
        .get_usage(pb::GetUsageRequest {
            tenant_id: tenant.into(),
            quota: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let used = |q: &str| u.quotas.iter().find(|x| x.quota == q).unwrap().used;
    (used("api_requests"), used("gpu_hours"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_data_plane_call_gets_the_code_its_credential_must_get() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let a = create_tenant(&node, "victim-a", "ENTERPRISE").await;
    let b = create_tenant(&node, "other-b", "ENTERPRISE").await;

    let (own, _) = make_key(
        &node,
        &a,
        "all",
        &["check", "increment", "reserve", "usage:read"],
    )
    .await;
    let (check_only, _) = make_key(&node, &a, "check only", &["check"]).await;
    let (usage_only, _) = make_key(&node, &a, "usage only", &["usage:read"]).await;
    let (revoked, revoked_id) = make_key(&node, &a, "to revoke", &["check", "increment"]).await;
    let (status, _) = rest_call(
        &node,
        Some(&common::operator()),
        &Method::DELETE,
        &format!("/api/v1/tenants/{a}/api-keys/{revoked_id}"),
        &None,
    )
    .await;
    assert_eq!(status, 200);
    let (others, _) = make_key(
        &node,
        &b,
        "b's",
        &["check", "increment", "reserve", "usage:read"],
    )
    .await;
    let expired = token_for("gateway", None, &["service"], -600);

    // Refused credentials first: nothing may change.
    let held = reservation(&node, &a).await;
    let before = spent(&node, &a).await;
    let refused: Vec<(&str, Option<Bearer>, Code)> = vec![
        ("no credential", None, Code::Unauthenticated),
        (
            "malformed",
            Some(bearer("not-a-token")),
            Code::Unauthenticated,
        ),
        ("expired", Some(bearer(&expired)), Code::Unauthenticated),
        ("revoked", Some(bearer(&revoked)), Code::Unauthenticated),
        (
            "other tenant's key",
            Some(bearer(&others)),
            Code::PermissionDenied,
        ),
        (
            "a token with neither service role nor tenant",
            Some(bearer(&token_for("mallory", None, &["admin"], 600))),
            Code::PermissionDenied,
        ),
        (
            "b's tenant token",
            Some(bearer(&token_for("bob", Some(&b), &["owner"], 600))),
            Code::PermissionDenied,
        ),
    ];
    for (what, cred, want) in &refused {
        for rpc in RPCS {
            let got = call(&node, cred.clone().unwrap_or_default(), rpc, &a, &held).await;
            assert_eq!(got, *want, "{rpc:?} with {what}");
        }
    }
    for rpc in RPCS {
        // A key of the tenant with some other scope than the call's.
        let wrong = if rpc.scope() == "usage:read" {
            &check_only
        } else {
            &usage_only
        };
        let got = call(&node, bearer(wrong), rpc, &a, &held).await;
        assert_eq!(got, Code::PermissionDenied, "{rpc:?} without its scope");
    }
    assert_eq!(
        spent(&node, &a).await,
        before,
        "a refused call changed usage"
    );

    // The tenant's own key, a service and an operator are answered.
    let allowed = [
        ("own key", bearer(&own)),
        ("service", bearer(&common::service_token())),
        ("operator", bearer(&common::operator())),
        (
            "a's tenant token",
            bearer(&token_for("alice", Some(&a), &[], 600)),
        ),
    ];
    for (what, cred) in &allowed {
        for rpc in RPCS {
            let reservation = reservation(&node, &a).await;
            let got = call(&node, cred.clone(), rpc, &a, &reservation).await;
            assert_eq!(got, Code::Ok, "{rpc:?} with {what}");
        }
    }
    // The key of a scope does that scope.
    assert_eq!(
        call(&node, bearer(&check_only), Rpc::Check, &a, &held).await,
        Code::Ok
    );
    // Each allowed credential spent 1 through each of the 4 calls that
    // spend api_requests (Increment, Batch, Stream, ShouldRateLimit).
    assert_eq!(
        spent(&node, &a).await.0,
        before.0 + 4 * allowed.len() as u64
    );

    // The violations were counted, and audited on both tenants.
    let metrics = common::metrics_text(&node).await;
    let violations: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cross_tenant_access_violations_total "))
        .expect("the counter is exported")
        .parse()
        .unwrap();
    assert!(violations >= 2.0 * RPCS.len() as f64, "{violations}");
    for tenant in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let audit: Value = common::get_json(&node.url(&format!(
                "/api/v1/tenants/{tenant}/audit?action=access.denied"
            )))
            .await;
            let events = audit["data"]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if events.iter().any(|e| e["target"] == "cross_tenant") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no audit event on {tenant}: {audit}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_shown_once_scoped_rotated_and_revoked_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let owner_tenant = common::create_owned(&node, "keys", "alice").await;
    let t = &owner_tenant;
    let alice = token_for("alice", Some(t), &[], 600);
    let path = format!("/api/v1/tenants/{t}/api-keys");

    // Bad input names the field, and leaves no key behind.
    for (body, field) in [
        (json!({"name": "", "scopes": ["check"]}), "name"),
        (json!({"name": "k", "scopes": ["admin"]}), "scopes"),
        (json!({"name": "k", "scopes": []}), "scopes"),
        (
            json!({"name": "k", "scopes": ["check"], "expiresAt": "2001-01-01T00:00:00Z"}),
            "expiresAt",
        ),
        (json!({"scopes": ["check"]}), "name"),
    ] {
        let (status, resp) =
            rest_call(&node, Some(&alice), &Method::POST, &path, &Some(body)).await;
        assert_eq!(status, 400, "{resp}");
        assert_eq!(resp["error"]["field"], field, "{resp}");
    }
    // A viewer may not make keys.
    let (status, _) = rest_call(
        &node,
        Some(&common::operator()),
        &Method::POST,
        &format!("/api/v1/tenants/{t}/members"),
        &Some(json!({"userId": "vic", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, 201);
    let vic = token_for("vic", Some(t), &[], 600);
    let (status, _) = rest_call(
        &node,
        Some(&vic),
        &Method::POST,
        &path,
        &Some(json!({"name": "k", "scopes": ["check"]})),
    )
    .await;
    assert_eq!(status, 403);
    let (_, listed) = rest_call(&node, Some(&alice), &Method::GET, &path, &None).await;
    assert_eq!(listed["data"], json!([]));

    // Created: the text once; listed without it.
    let (status, made) = rest_call(
        &node,
        Some(&alice),
        &Method::POST,
        &path,
        &Some(json!({"name": "gateway", "scopes": ["increment", "usage:read"]})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let key = made["data"]["key"].as_str().unwrap().to_string();
    let id = made["data"]["apiKey"]["id"].as_str().unwrap().to_string();
    assert_eq!(made["data"]["apiKey"]["last4"], key[key.len() - 4..]);
    let (_, listed) = rest_call(&node, Some(&alice), &Method::GET, &path, &None).await;
    let text = listed.to_string();
    assert!(
        !text.contains(&key[4..]),
        "the listing shows the key: {text}"
    );
    assert_eq!(
        listed["data"][0]["scopes"],
        json!(["increment", "usage:read"])
    );
    let audit: Value =
        common::get_json(&node.url(&format!("/api/v1/tenants/{t}/audit?action=api_key.created")))
            .await;
    assert!(
        !audit.to_string().contains(&key[4..]),
        "the audit shows the key"
    );
    assert_eq!(
        audit["data"]["events"].as_array().unwrap().len(),
        1,
        "{audit}"
    );

    let incr = |c: Bearer| {
        let node_grpc = node.grpc.clone();
        let t = t.clone();
        async move {
            common::grpc_with(&node_grpc, c)
                .await
                .increment(pb::IncrementRequest {
                    tenant_id: t,
                    quota: "api_requests".into(),
                    amount: 1,
                    ..Default::default()
                })
                .await
                .map(|_| ())
                .map_err(|s| s.code())
        }
    };
    assert_eq!(incr(bearer(&key)).await, Ok(()));

    // Rotated with a grace period: both secrets work until it ends.
    let (status, rotated) = rest_call(
        &node,
        Some(&alice),
        &Method::POST,
        &format!("{path}/{id}/rotate"),
        &Some(json!({"graceSeconds": 3600})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_key = rotated["data"]["key"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    assert!(rotated["data"]["apiKey"]["previousValidUntil"].is_string());
    assert_eq!(incr(bearer(&new_key)).await, Ok(()));
    assert_eq!(incr(bearer(&key)).await, Ok(()));
    // Rotated without one: the old secret stops.
    let (_, again) = rest_call(
        &node,
        Some(&alice),
        &Method::POST,
        &format!("{path}/{id}/rotate"),
        &None,
    )
    .await;
    let newest = again["data"]["key"].as_str().unwrap().to_string();
    let stopped = wait_refused(|| incr(bearer(&new_key))).await;
    assert!(stopped < Duration::from_secs(1), "{stopped:?}");
    assert_eq!(incr(bearer(&newest)).await, Ok(()));

    // Revoked: refused within a second.
    let (status, left) = rest_call(
        &node,
        Some(&alice),
        &Method::DELETE,
        &format!("{path}/{id}"),
        &None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(left["data"], json!([]));
    let stopped = wait_refused(|| incr(bearer(&newest))).await;
    assert!(stopped < Duration::from_secs(1), "{stopped:?}");
    let (status, resp) = rest_call(
        &node,
        Some(&alice),
        &Method::DELETE,
        &format!("{path}/{id}"),
        &None,
    )
    .await;
    assert_eq!(status, 404, "{resp}");
}

/// How long until calls with a credential are refused UNAUTHENTICATED.
async fn wait_refused<F, Fut>(call: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), Code>>,
{
    let start = Instant::now();
    loop {
        match call().await {
            Err(Code::Unauthenticated) => return start.elapsed(),
            other => assert!(
                start.elapsed() < Duration::from_secs(5),
                "still {other:?} after 5 s"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClusterRpc {
    Join,
    ShardMap,
    Status,
    RemoveNode,
    MoveLeader,
    Forward,
    Elect,
}

const CLUSTER_RPCS: [ClusterRpc; 7] = [
    ClusterRpc::Join,
    ClusterRpc::ShardMap,
    ClusterRpc::Status,
    ClusterRpc::RemoveNode,
    ClusterRpc::MoveLeader,
    ClusterRpc::Forward,
    ClusterRpc::Elect,
];

/// Call `rpc` of the `Cluster` service at `url` with `bearer` (and
/// `join_token` metadata, if any); its code.
async fn cluster_call(
    url: &str,
    bearer: Bearer,
    join_token: Option<&str>,
    rpc: ClusterRpc,
    node_id: u64,
) -> Code {
    use quotad_proto::cluster as c;
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = c::cluster_client::ClusterClient::new(bearer.on(channel));
    fn req<T>(m: T, join_token: Option<&str>) -> tonic::Request<T> {
        let mut r = tonic::Request::new(m);
        if let Some(t) = join_token {
            r.metadata_mut()
                .insert("quotad-join-token", t.parse().unwrap());
        }
        r
    }
    let result = match rpc {
        ClusterRpc::Join => client
            .join(req(
                c::JoinRequest {
                    peer_addr: "127.0.0.9:1".into(),
                    grpc_addr: "127.0.0.9:2".into(),
                    http_addr: "127.0.0.9:3".into(),
                    ..Default::default()
                },
                join_token,
            ))
            .await
            .map(drop),
        ClusterRpc::ShardMap => client
            .shard_map(req(c::ShardMapRequest {}, join_token))
            .await
            .map(drop),
        ClusterRpc::Status => client
            .status(req(c::StatusRequest {}, join_token))
            .await
            .map(drop),
        ClusterRpc::RemoveNode => client
            .remove_node(req(c::RemoveNodeRequest { node_id }, join_token))
            .await
            .map(drop),
        // A group that does not exist: NOT_FOUND once the caller may ask.
        ClusterRpc::MoveLeader => client
            .move_leader(req(
                c::MoveLeaderRequest {
                    group: 99,
                    node: node_id,
                },
                join_token,
            ))
            .await
            .map(drop),
        ClusterRpc::Forward => client
            .forward(req(
                c::ForwardMessage {
                    payload: vec![0, 1, 2],
                },
                join_token,
            ))
            .await
            .map(drop),
        ClusterRpc::Elect => client
            .elect(req(c::ElectRequest { group: 1 }, join_token))
            .await
            .map(drop),
    };
    match result {
        Ok(()) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_rpcs_are_closed_to_everyone_but_the_cluster_and_its_operators() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let a = create_tenant(&node, "cluster-a", "FREE").await;
    let (key, _) = make_key(&node, &a, "k", &["check"]).await;
    let peer_url = format!("http://{}", node.peer);
    let expired = token_for("gateway", None, &["service"], -600);

    // The client port: the shard map and status for any valid credential,
    // node removal and leader moves for operators, nothing node-to-node for anyone.
    let invalid = [Bearer::none(), bearer("not-a-token"), bearer(&expired)];
    let valid_non_operators = [
        bearer(&key),
        bearer(&common::service_token()),
        bearer(&token_for("alice", Some(&a), &[], 600)),
    ];
    for rpc in CLUSTER_RPCS {
        for cred in &invalid {
            let got = cluster_call(&node.grpc, cred.clone(), None, rpc, node.node_id).await;
            assert_eq!(
                got,
                Code::Unauthenticated,
                "client port {rpc:?} with {cred:?}"
            );
        }
        let for_valid = match rpc {
            ClusterRpc::ShardMap | ClusterRpc::Status => Code::Ok,
            _ => Code::PermissionDenied,
        };
        for cred in &valid_non_operators {
            let got = cluster_call(&node.grpc, cred.clone(), None, rpc, node.node_id).await;
            assert_eq!(got, for_valid, "client port {rpc:?}");
        }
        let for_operator = match rpc {
            ClusterRpc::ShardMap | ClusterRpc::Status => Code::Ok,
            // Removing the only node is refused for what it is.
            ClusterRpc::RemoveNode => Code::FailedPrecondition,
            ClusterRpc::MoveLeader => Code::NotFound,
            _ => Code::PermissionDenied,
        };
        let got = cluster_call(
            &node.grpc,
            bearer(&common::operator()),
            Some(common::JOIN_TOKEN),
            rpc,
            node.node_id,
        )
        .await;
        assert_eq!(got, for_operator, "client port {rpc:?} as an operator");
    }

    // The peer port: only the cluster's nodes, whatever other credential a
    // caller brings; this node (started without --join-token) admits no
    // joins.
    for rpc in CLUSTER_RPCS {
        for cred in [
            Bearer::none(),
            bearer(&common::operator()),
            bearer(&common::service_token()),
            bearer(&key),
        ] {
            let got = cluster_call(&peer_url, cred, None, rpc, node.node_id).await;
            let want = if rpc == ClusterRpc::Join {
                Code::PermissionDenied
            } else {
                Code::Unauthenticated
            };
            assert_eq!(got, want, "peer port {rpc:?}");
        }
    }
    let raft =
        quotad_proto::raft::raft_transport_client::RaftTransportClient::connect(peer_url.clone())
            .await
            .unwrap()
            .append_entries(quotad_proto::raft::RaftMessage {
                group: 0,
                payload: vec![0xFF; 64],
            })
            .await;
    assert_eq!(raft.unwrap_err().code(), Code::Unauthenticated);

    // Nothing a refused call asked for happened: still one node, unchanged.
    let status = common::peer_client(&node)
        .await
        .status(quotad_proto::cluster::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.nodes.len(), 1, "{status:?}");
    assert_eq!(status.nodes[0].state, "active");
}

/// A `Forward` to `node`'s peer port with the cluster's credential, on
/// behalf of `by` (raw header bytes, or none): the engine's answer's code.
async fn forward_as(
    node: &Node,
    by: Option<Vec<u8>>,
    req: &quotad_engine::cluster::ForwardRequest,
) -> Code {
    use quotad_engine::cluster::{ForwardReply, principal};
    use quotad_engine::wire_error::WireError;
    let mut request = tonic::Request::new(quotad_proto::cluster::ForwardMessage {
        payload: quotad_engine::format::encode(req).unwrap(),
    });
    if let Some(bytes) = by {
        request.metadata_mut().insert_bin(
            principal::HEADER,
            tonic::metadata::BinaryMetadataValue::from_bytes(&bytes),
        );
    }
    let reply = match common::peer_client(node).await.forward(request).await {
        Ok(r) => r.into_inner(),
        Err(s) => return s.code(),
    };
    let answer: Result<ForwardReply, WireError> =
        quotad_engine::format::decode(&reply.payload).unwrap();
    match answer {
        Ok(_) => Code::Ok,
        Err(e) => {
            let e = quotad_engine::EngineError::from(e);
            tonic::Status::from(e).code()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_caller_is_checked_again_by_the_leader() {
    use quotad_engine::cluster::ForwardRequest;
    use quotad_engine::model::{Caller, KeyProof, Principal, Scope, Scopes};
    use quotad_engine::quota::TenantOp;
    use quotad_engine::shard::TenantCall;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let a = create_tenant(&node, "forwarded-a", "FREE").await;
    let b = create_tenant(&node, "forwarded-b", "FREE").await;
    let (key, key_id) = make_key(&node, &a, "k", &["check", "increment"]).await;
    let (ta, tb) = (a.parse().unwrap(), b.parse().unwrap());
    // What the node a call arrived at made of the key.
    let hash = quotad_engine::auth::api_key::hash(&key);
    let as_key = |scopes| Principal {
        caller: Caller::Tenant {
            tenant: ta,
            name: format!("api-key:{key_id}"),
            scopes,
        },
        expires_at_ms: None,
        key: Some(KeyProof {
            id: key_id.clone(),
            hash,
        }),
    };
    let header = |p: &Principal| Some(quotad_engine::format::encode(p).unwrap());
    let increment = |tenant| ForwardRequest::Tenant {
        tenant,
        call: TenantCall::Apply {
            op: TenantOp::Increment {
                quota: "api_requests".into(),
                amount: 1,
                idempotency_key: None,
            },
            audit: None,
            consistency: quotad_engine::model::Consistency::Strict,
        },
    };
    let key_principal = as_key(Scopes::of([Scope::Check, Scope::Increment]));
    assert_eq!(
        forward_as(&node, header(&key_principal), &increment(ta)).await,
        Code::Ok
    );
    // Another tenant, a scope the key lacks, an admin change: refused on
    // the leader whatever the forwarding node claims.
    assert_eq!(
        forward_as(&node, header(&key_principal), &increment(tb)).await,
        Code::PermissionDenied
    );
    let check_only = as_key(Scopes::of([Scope::Check]));
    assert_eq!(
        forward_as(&node, header(&check_only), &increment(ta)).await,
        Code::PermissionDenied
    );
    let delete = ForwardRequest::Tenant {
        tenant: tb,
        call: TenantCall::Apply {
            op: TenantOp::Delete { retention_ms: 0 },
            audit: None,
            consistency: quotad_engine::model::Consistency::Strict,
        },
    };
    let service = Principal::platform("gateway");
    assert_eq!(
        forward_as(&node, header(&service), &delete).await,
        Code::PermissionDenied
    );
    let expired = Principal {
        expires_at_ms: Some(1),
        ..service.clone()
    };
    assert_eq!(
        forward_as(&node, header(&expired), &increment(tb)).await,
        Code::Unauthenticated
    );
    // Another secret under the key's id does not open it.
    let mut forged = key_principal.clone();
    forged.key.as_mut().unwrap().hash = [0; 32];
    assert_eq!(
        forward_as(&node, header(&forged), &increment(ta)).await,
        Code::Unauthenticated
    );
    // Garbage in the header is the caller's error, not the node's.
    assert_eq!(
        forward_as(&node, Some(vec![0xFF, 7, 7]), &increment(ta)).await,
        Code::InvalidArgument
    );

    // Revoked: refused by the leader at once, with no cache in between.
    let (status, body) = rest_call(
        &node,
        Some(&common::operator()),
        &Method::DELETE,
        &format!("/api/v1/tenants/{a}/api-keys/{key_id}"),
        &None,
    )
    .await;
    assert!((200..300).contains(&status), "{status} {body}");
    assert_eq!(
        forward_as(&node, header(&key_principal), &increment(ta)).await,
        Code::Unauthenticated
    );
    // Only the first increment was spent, on a and nothing on b.
    assert_eq!(spent(&node, &a).await.0, 1);
    assert_eq!(spent(&node, &b).await.0, 0);
    // A forward without a principal is the node's own work (REST).
    assert_eq!(forward_as(&node, None, &increment(tb)).await, Code::Ok);
}
