//! A cluster's peer port against strangers, over mutual TLS: a node
//! without the join token cannot join (even with a certificate of the
//! cluster's CA), a node without TLS cannot even connect, and a caller
//! without the cluster key cannot send Raft messages or forward requests,
//! while the cluster's own nodes, which joined with the token, replicate
//! and forward as usual.
mod common;

use common::cluster::TestCluster;
use common::{JOIN_TOKEN, create_tenant};
use quotad_proto::raft::RaftMessage;
use quotad_proto::raft::raft_transport_client::RaftTransportClient;
use std::process::Command;
use std::time::Duration;
use tonic::Code;

/// `quotad serve --join SEED` with `token` (or none) and `extra`
/// arguments: how it ended and what it said. It must end by itself: a
/// refused join is not retried.
fn try_to_join(seed: &str, token: Option<&str>, extra: &[String]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("timeout");
    cmd.arg("60")
        .arg(env!("CARGO_BIN_EXE_quotad"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(common::Node::local_args())
        .args(["--join", seed])
        .args(extra)
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
    let c = TestCluster::start_tls(3, &["--shards", "2"]).await;
    let tenant = create_tenant(c.node(0), "members", "FREE").await;
    let seed = c.node(0).peer.clone();
    let certs = common::tls::dir().unwrap().to_path_buf();
    let tls_args = common::tls::serve_args(&certs);

    // Certificates of the cluster's CA do not make a member.
    let (ok, said) = try_to_join(&seed, Some("a-wrong-join-token-0000"), &tls_args);
    assert!(!ok, "joined with a wrong token: {said}");
    assert!(said.contains("wrong join token"), "{said}");
    let (ok, said) = try_to_join(&seed, None, &tls_args);
    assert!(!ok && said.contains("join_token"), "{said}");

    // Raft and forwarding from outside the cluster: refused before decoding
    // (in plaintext, not even connected).
    for addr in (0..3).map(|i| c.node(i).peer.clone()) {
        let plain = RaftTransportClient::connect(format!("http://{addr}")).await;
        if let Ok(mut plain) = plain {
            let vote = plain
                .vote(RaftMessage {
                    group: 0,
                    payload: vec![1, 2, 3],
                })
                .await;
            assert!(vote.is_err(), "a plaintext vote was answered: {vote:?}");
        }
        let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(common::tls::grpc_client())
            .unwrap()
            .connect()
            .await
            .expect("a client of the cluster's CA gets through TLS");
        let mut raft = RaftTransportClient::new(channel);
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
        let (seed, tls_args) = (seed.clone(), tls_args.clone());
        tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().unwrap();
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quotad"))
                .arg("serve")
                .arg("--data-dir")
                .arg(dir.path())
                .args(common::Node::local_args())
                .args(["--join", &seed, "--join-token", JOIN_TOKEN])
                .args(&tls_args)
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
