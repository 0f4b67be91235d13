//! A cluster's peer port against strangers: a node without the join token
//! cannot join, and a caller without the cluster key cannot send Raft
//! messages or forward requests, while the cluster's own nodes, which
//! joined with the token, replicate and forward as usual.
mod common;

use common::cluster::TestCluster;
use common::{JOIN_TOKEN, create_tenant};
use quotad_proto::raft::RaftMessage;
use quotad_proto::raft::raft_transport_client::RaftTransportClient;
use std::process::Command;
use std::time::Duration;
use tonic::Code;

/// `quotad serve --join SEED` with `token` (or none): how it ended and
/// what it said. It must end by itself: a refused join is not retried.
fn try_to_join(seed: &str, token: Option<&str>) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("timeout");
    cmd.arg("60")
        .arg(env!("CARGO_BIN_EXE_quotad"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(common::Node::local_args())
        .args(["--join", seed])
        .env("JWT_SECRET", common::SECRET)
        .env("RUST_LOG", "error");
    if let Some(t) = token {
        cmd.args(["--join-token", t]);
    }
    let out = cmd.output().expect("run quotad");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_join_or_speak_raft_and_members_work_as_usual() {
    let c = TestCluster::start(3, &["--shards", "2"]).await;
    let tenant = create_tenant(c.node(0), "members", "FREE").await;
    let seed = c.node(0).peer.clone();

    let (ok, said) = try_to_join(&seed, Some("a-wrong-join-token-0000"));
    assert!(!ok, "joined with a wrong token: {said}");
    assert!(said.contains("wrong join token"), "{said}");
    let (ok, said) = try_to_join(&seed, None);
    assert!(!ok && said.contains("join_token"), "{said}");

    // Raft and forwarding from outside the cluster: refused before decoding.
    for addr in c
        .grpc_addrs()
        .iter()
        .map(|_| ())
        .zip(0..3)
        .map(|(_, i)| c.node(i).peer.clone())
    {
        let mut raft = RaftTransportClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        for group in [0, 1] {
            let vote = raft
                .vote(RaftMessage {
                    group,
                    payload: vec![1, 2, 3],
                })
                .await
                .unwrap_err();
            assert_eq!(vote.code(), Code::Unauthenticated, "{vote:?}");
        }
    }

    // Still the three members, and they serve the tenant through any node
    // (forwarding to its leader with the cluster's credential).
    let status = c.status().await.unwrap();
    assert_eq!(status.nodes.len(), 3, "{status:?}");
    for i in 0..3 {
        let d = c
            .node(i)
            .grpc()
            .await
            .increment(quotad_proto::v1::IncrementRequest {
                tenant_id: tenant.clone(),
                quota: "api_requests".into(),
                amount: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(d.allowed);
    }
    assert_eq!(common::api_requests_used(c.node(2), &tenant).await, 3);

    // A node with the token joins.
    let (ok, said) = {
        let seed = seed.clone();
        tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().unwrap();
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quotad"))
                .arg("serve")
                .arg("--data-dir")
                .arg(dir.path())
                .args(common::Node::local_args())
                .args(["--join", &seed, "--join-token", JOIN_TOKEN])
                .env("JWT_SECRET", common::SECRET)
                .env("RUST_LOG", "error")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            let stdout = child.stdout.take().unwrap();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
            let key = std::fs::read_to_string(dir.path().join("cluster.key")).unwrap_or_default();
            let _ = child.kill();
            let _ = child.wait();
            (
                line.starts_with("quotad listening") && key.trim().len() == 64,
                line,
            )
        })
        .await
        .unwrap()
    };
    assert!(ok, "a node with the token did not join: {said}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
