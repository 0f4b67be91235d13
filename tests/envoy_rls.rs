//! Envoy's rate limit service on a real node, called with a client built
//! from the Envoy API protos (`envoy-types`), as Envoy itself calls it.
mod common;

use common::{Node, create_tenant, set_quota};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::google::protobuf::UInt64Value;
use serde_json::json;

fn descriptor(entries: &[(&str, &str)], hits: Option<u64>) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(k, v)| Entry {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        hits_addend: hits.map(|value| UInt64Value { value }),
        ..Default::default()
    }
}

/// A node on `dir` serving Envoy's API with the descriptor rules `toml`.
fn rls_node(dir: &std::path::Path, toml: &str) -> Node {
    let config = dir.join("rls.toml");
    std::fs::write(&config, toml).unwrap();
    let mut args = Node::local_args();
    args.extend(["--envoy-config".into(), config.display().to_string()]);
    Node::start_with(&dir.join("data"), &args)
}

#[tokio::test]
async fn should_rate_limit_answers_ok_then_over_limit_and_respects_hits_addend() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rls.toml");
    std::fs::write(
        &config,
        "[[domains]]\ndomain = \"gw\"\ntenant_key = \"tenant_id\"\ndefault_quota = \"api_requests\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut args = Node::local_args();
    args.extend(["--envoy-config".into(), config.display().to_string()]);
    let node = Node::start_with(&data, &args);
    let tenant = create_tenant(&node, "envoy", "STARTER").await;
    set_quota(
        &node,
        &tenant,
        "api_requests",
        json!({"limit": 5, "action": "block"}),
    )
    .await;
    let mut rls = RateLimitServiceClient::new(
        common::service_bearer().on(tonic::transport::Endpoint::from_shared(node.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()),
    );
    let ask = |hits_addend: u32, descriptors: Vec<RateLimitDescriptor>| RateLimitRequest {
        domain: "gw".into(),
        descriptors,
        hits_addend,
    };

    // Request-level hits_addend: 2 of 5.
    let r = rls
        .should_rate_limit(ask(2, vec![descriptor(&[("tenant_id", &tenant)], None)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, Code::Ok as i32);
    assert_eq!(r.statuses.len(), 1);
    let s = &r.statuses[0];
    assert_eq!(s.code, Code::Ok as i32);
    assert_eq!(s.limit_remaining, 3);
    assert_eq!(s.current_limit.as_ref().unwrap().requests_per_unit, 5);
    assert!(s.duration_until_reset.is_some(), "a monthly quota resets");
    let headers: Vec<(&str, &str)> = r
        .response_headers_to_add
        .iter()
        .map(|h| (h.key.as_str(), h.value.as_str()))
        .collect();
    assert!(
        headers.contains(&("x-ratelimit-remaining", "3")),
        "{headers:?}"
    );

    // The descriptor's own hits_addend wins: 3 more is exactly the limit;
    // a descriptor quotad has no rule for is OK and not counted.
    let r = rls
        .should_rate_limit(ask(
            1,
            vec![
                descriptor(&[("tenant_id", &tenant)], Some(3)),
                descriptor(&[("path", "/health")], None),
            ],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, Code::Ok as i32);
    assert_eq!(r.statuses[0].limit_remaining, 0);
    assert_eq!(r.statuses[1].code, Code::Ok as i32);
    assert!(r.statuses[1].current_limit.is_none());

    // Over the limit now; nothing more is counted.
    let r = rls
        .should_rate_limit(ask(0, vec![descriptor(&[("tenant_id", &tenant)], None)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    assert_eq!(r.statuses[0].code, Code::OverLimit as i32);
    let mut quota = node.grpc().await;
    let u = quota
        .get_usage(quotad_proto::v1::GetUsageRequest {
            tenant_id: tenant.clone(),
            quota: "api_requests".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u.quotas[0].used, 5);

    // Bad input is named: an unknown domain, a tenant entry that is no id.
    let e = rls
        .should_rate_limit(RateLimitRequest {
            domain: "other".into(),
            descriptors: vec![],
            hits_addend: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("domain"), "{}", e.message());
    let e = rls
        .should_rate_limit(ask(1, vec![descriptor(&[("tenant_id", "nope")], None)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("tenant_id"), "{}", e.message());
}

/// Sub-limits: a descriptor with a `model` entry spends the tenant's
/// `api_requests_model_<model>` quota; Envoy sends it beside the parent
/// descriptor, so either can refuse. A model without a quota of its own is
/// limited only by the parent.
#[tokio::test]
async fn sub_limit_entries_spend_the_narrowed_quota_beside_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let node = rls_node(
        dir.path(),
        "[[domains]]\ndomain = \"gw\"\ndefault_quota = \"api_requests\"\nsub_limit_keys = [\"model\"]\n",
    );
    let tenant = create_tenant(&node, "envoy-sub", "STARTER").await;
    set_quota(
        &node,
        &tenant,
        "api_requests",
        json!({"limit": 10, "action": "block"}),
    )
    .await;
    set_quota(
        &node,
        &tenant,
        "api_requests_model_gpt_4o",
        json!({"limit": 2, "action": "block"}),
    )
    .await;
    let mut rls = RateLimitServiceClient::new(
        common::service_bearer().on(tonic::transport::Endpoint::from_shared(node.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()),
    );
    let ask = |model: &str| RateLimitRequest {
        domain: "gw".into(),
        descriptors: vec![
            descriptor(&[("tenant_id", &tenant)], None),
            descriptor(&[("tenant_id", &tenant), ("model", model)], None),
        ],
        hits_addend: 1,
    };
    let codes = |r: &envoy_types::pb::envoy::service::ratelimit::v3::RateLimitResponse| {
        (
            r.overall_code,
            r.statuses.iter().map(|s| s.code).collect::<Vec<_>>(),
        )
    };
    let (ok, over) = (Code::Ok as i32, Code::OverLimit as i32);
    for remaining in [1, 0] {
        let r = rls
            .should_rate_limit(ask("GPT-4o"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(codes(&r), (ok, vec![ok, ok]));
        assert_eq!(r.statuses[1].limit_remaining, remaining);
        assert_eq!(
            r.statuses[1].current_limit.as_ref().unwrap().name,
            "api_requests_model_gpt_4o"
        );
    }
    // The model's own limit refuses the request as a whole: the parent,
    // which alone would admit it, is not spent either.
    let r = rls
        .should_rate_limit(ask("gpt-4o"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(codes(&r), (over, vec![ok, over]));
    // A model with no quota of its own: only the parent limits it.
    let r = rls
        .should_rate_limit(ask("small"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(codes(&r), (ok, vec![ok, ok]));
    assert!(r.statuses[1].current_limit.is_none(), "not counted");
    let quota = node.grpc().await;
    let used = |q: &'static str| {
        let mut quota = quota.clone();
        let tenant = tenant.clone();
        async move {
            quota
                .get_usage(quotad_proto::v1::GetUsageRequest {
                    tenant_id: tenant,
                    quota: q.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .quotas[0]
                .used
        }
    };
    assert_eq!(
        used("api_requests").await,
        3,
        "the three admitted requests spent the parent, the refused one nothing"
    );
    assert_eq!(used("api_requests_model_gpt_4o").await, 2);
}

/// A request's descriptors of one tenant are one decision, and its
/// `request_id` entry makes Envoy's retry of it spend nothing twice.
#[tokio::test]
async fn a_retried_request_with_a_request_id_is_decided_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = rls_node(
        dir.path(),
        "[[domains]]\ndomain = \"gw\"\ndefault_quota = \"api_requests\"\n",
    );
    let tenant = create_tenant(&node, "envoy-retry", "STARTER").await;
    set_quota(
        &node,
        &tenant,
        "api_requests",
        json!({"limit": 10, "action": "block"}),
    )
    .await;
    set_quota(
        &node,
        &tenant,
        "llm_tokens",
        json!({"limit": 100, "action": "block"}),
    )
    .await;
    let mut rls = RateLimitServiceClient::new(
        common::service_bearer().on(tonic::transport::Endpoint::from_shared(node.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()),
    );
    let ask = |id: &str, tokens: u64| RateLimitRequest {
        domain: "gw".into(),
        descriptors: vec![
            descriptor(&[("tenant_id", &tenant), ("request_id", id)], None),
            descriptor(
                &[
                    ("tenant_id", &tenant),
                    ("quota", "llm_tokens"),
                    ("request_id", id),
                ],
                Some(tokens),
            ),
        ],
        hits_addend: 1,
    };
    for _ in 0..3 {
        let r = rls
            .should_rate_limit(ask("req-1", 40))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.overall_code, Code::Ok as i32);
        assert_eq!(
            r.statuses[1].limit_remaining, 60,
            "the first answer, replayed"
        );
    }
    // Over on tokens: neither quota is spent.
    let r = rls
        .should_rate_limit(ask("req-2", 70))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    assert_eq!(
        r.statuses.iter().map(|s| s.code).collect::<Vec<_>>(),
        [Code::Ok as i32, Code::OverLimit as i32]
    );
    let r = rls
        .should_rate_limit(ask("req-3", 60))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, Code::Ok as i32);
    assert_eq!(
        (r.statuses[0].limit_remaining, r.statuses[1].limit_remaining),
        (8, 0),
        "two requests and 100 tokens spent in all"
    );
    // Descriptors of one request naming two different request ids.
    let mut bad = ask("req-4", 1);
    bad.descriptors[1].entries[2].value = "req-5".into();
    let e = rls.should_rate_limit(bad).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("descriptors[1].request_id"),
        "{}",
        e.message()
    );
}
