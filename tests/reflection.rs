//! Black-box: gRPC server reflection on the client port, v1 and v1alpha,
//! lists exactly the services the port serves, and a stock grpcurl
//! (1.8.6, which speaks only v1alpha) can list, describe and call them.
mod common;

use common::{Node, create_tenant};
use std::collections::BTreeSet;
use std::process::Command;
use tonic_reflection::pb::{v1, v1alpha};

const SERVED: [&str; 5] = [
    "envoy.service.ratelimit.v3.RateLimitService",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "quotad.cluster.v1.Cluster",
    "quotad.v1.QuotaService",
];

async fn channel(node: &Node) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(node.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// `list_services` over one reflection protocol version (`v1` or
/// `v1alpha`: the same messages in two packages).
macro_rules! list_services {
    ($version:ident, $node:expr) => {{
        use $version::server_reflection_request::MessageRequest;
        use $version::server_reflection_response::MessageResponse;
        let mut c =
            $version::server_reflection_client::ServerReflectionClient::new(channel($node).await);
        let req = $version::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = c
            .server_reflection_info(tokio_stream::iter([req]))
            .await
            .unwrap()
            .into_inner();
        let answer = answers.message().await.unwrap().expect("an answer");
        match answer.message_response {
            Some(MessageResponse::ListServicesResponse(l)) => l
                .service
                .into_iter()
                .map(|s| s.name)
                .collect::<BTreeSet<String>>(),
            other => panic!("unexpected answer {other:?}"),
        }
    }};
}

fn grpcurl(args: &[&str]) -> (bool, String) {
    let out = Command::new(common::grpcurl())
        .args(args)
        .output()
        .expect("run grpcurl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_exactly_the_client_port_services_for_v1_v1alpha_and_grpcurl() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let served: BTreeSet<String> = SERVED.iter().map(|s| s.to_string()).collect();
    assert_eq!(list_services!(v1, &node), served);
    assert_eq!(list_services!(v1alpha, &node), served);

    let addr = node.grpc.trim_start_matches("http://").to_string();
    let (ok, listed) = grpcurl(&["-plaintext", &addr, "list"]);
    assert!(ok, "{listed}");
    let listed: BTreeSet<String> = listed.lines().map(str::to_string).collect();
    assert_eq!(listed, served);
    for service in SERVED {
        let (ok, described) = grpcurl(&["-plaintext", &addr, "describe", service]);
        assert!(
            ok && described.contains(&format!("{service} is a service")),
            "{described}"
        );
    }

    // A call to each of quotad's own services and to Envoy's, with the
    // messages encoded from reflection alone.
    let t = create_tenant(&node, "reflected", "FREE").await;
    let calls = [
        (
            "quotad.v1.QuotaService/Increment",
            format!(r#"{{"tenant_id":"{t}","quota":"api_requests","amount":2}}"#),
            "\"usage\": \"2\"",
        ),
        (
            "quotad.cluster.v1.Cluster/ShardMap",
            "{}".to_string(),
            "groups",
        ),
        (
            "envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
            format!(
                r#"{{"domain":"gw","descriptors":[{{"entries":[{{"key":"tenant_id","value":"{t}"}},{{"key":"quota","value":"api_requests"}}]}}]}}"#
            ),
            "\"overallCode\": \"OK\"",
        ),
    ];
    for (method, body, want) in calls {
        let auth = format!("authorization: Bearer {}", common::service_token());
        let (ok, answer) = grpcurl(&["-plaintext", "-H", &auth, "-d", &body, &addr, method]);
        assert!(ok && answer.contains(want), "{method}: {answer}");
    }
    assert_eq!(common::api_requests_used(&node, &t).await, 3);
}
