//! Traces of sampled requests reach an OTLP collector: a real node (and a
//! real cluster) exporting to a Python OTLP/gRPC receiver built from the
//! OpenTelemetry protos (`tests/python/otlp_receiver.py`). The spans must
//! form one tree per request, wire → route → actor → commit → apply, and
//! stay one trace across a forward to the group's leader.
mod common;

use common::cluster::TestCluster;
use common::{Node, create_tenant, set_quota};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use quotad_proto::v1 as pb;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Python receiver, and the spans it has printed.
struct Receiver {
    child: Child,
    endpoint: String,
    spans: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let python = std::env::var("QUOTAD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let importable = Command::new(&python)
            .args(["-c", "import grpc, opentelemetry.proto.collector.trace.v1"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            importable,
            "{python} cannot import grpc and opentelemetry.proto: run the README's test command \
             (scripts/test.sh), which installs them, or set QUOTAD_TEST_PYTHON"
        );
        let script = format!(
            "{}/tests/python/otlp_receiver.py",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut child = Command::new(&python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the OTLP receiver");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .next()
            .expect("the receiver's first line")
            .expect("readable");
        let port = first
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("not a listening line: {first}"))
            .to_string();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let span: Value = serde_json::from_str(&line).expect("a JSON span");
                sink.lock().unwrap().push(span);
            }
        });
        Receiver {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            spans,
        }
    }

    /// The spans of `trace` once `done` holds for them (at most 60 s:
    /// the node exports every second).
    async fn trace(&self, trace: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let spans: Vec<Value> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s["trace_id"] == trace)
                .cloned()
                .collect();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "trace {trace} incomplete after 60 s: {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn all(&self) -> Vec<Value> {
        self.spans.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn otlp_args(r: &Receiver) -> Vec<String> {
    vec![
        "--otlp-endpoint".into(),
        r.endpoint.clone(),
        "--otlp-sample-ratio".into(),
        "1".into(),
    ]
}

fn named<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = spans.iter().filter(|s| s["name"] == name).collect();
    assert_eq!(found.len(), 1, "one {name} span in {spans:#?}");
    found[0]
}

fn ns(span: &Value, field: &str) -> u64 {
    span[field].as_u64().unwrap()
}

/// `child` is `parent`'s child and lies within it in time.
fn within(child: &Value, parent: &Value) {
    assert_eq!(
        child["parent_span_id"], parent["span_id"],
        "{} is a child of {}",
        child["name"], parent["name"]
    );
    assert!(
        ns(parent, "start_ns") <= ns(child, "start_ns")
            && ns(child, "start_ns") <= ns(child, "end_ns"),
        "{child:#?} starts within {parent:#?}"
    );
}

/// A caller's sampled `traceparent` with these ids.
fn traceparent(
    trace: &str,
    span: &str,
    sampled: bool,
) -> tonic::metadata::MetadataValue<tonic::metadata::Ascii> {
    format!("00-{trace}-{span}-{}", if sampled { "01" } else { "00" })
        .parse()
        .unwrap()
}

fn names(spans: &[Value]) -> Vec<&str> {
    spans.iter().map(|s| s["name"].as_str().unwrap()).collect()
}

const STAGES: [&str; 5] = [
    "envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
    "quotad.route",
    "quotad.actor",
    "quotad.commit",
    "quotad.apply",
];

#[tokio::test]
async fn a_strict_decision_is_one_trace_from_the_wire_to_the_apply() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rls.toml");
    std::fs::write(
        &rules,
        "[[domains]]\ndomain = \"gw\"\ntenant_key = \"tenant_id\"\ndefault_quota = \"api_requests\"\n",
    )
    .unwrap();
    let mut args = Node::local_args();
    args.extend(otlp_args(&receiver));
    args.extend(["--envoy-config".into(), rules.display().to_string()]);
    let node = Node::start_with(&dir.path().join("data"), &args);
    let tenant = create_tenant(&node, "traced", "STARTER").await;
    set_quota(
        &node,
        &tenant,
        "api_requests",
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
    let ask = |trace: Option<(&str, bool)>| {
        let mut r = tonic::Request::new(RateLimitRequest {
            domain: "gw".into(),
            descriptors: vec![RateLimitDescriptor {
                entries: vec![Entry {
                    key: "tenant_id".into(),
                    value: tenant.clone(),
                }],
                ..Default::default()
            }],
            hits_addend: 1,
        });
        if let Some((id, sampled)) = trace {
            r.metadata_mut()
                .insert("traceparent", traceparent(id, "00f067aa0ba902b7", sampled));
        }
        r
    };

    // A caller that chose not to trace its request is followed...
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    let r = rls
        .should_rate_limit(ask(Some((unsampled, false))))
        .await
        .unwrap();
    assert_eq!(r.into_inner().overall_code, Code::Ok as i32);
    // ...one that traces it has its trace continued, stage by stage.
    let sampled = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = rls
        .should_rate_limit(ask(Some((sampled, true))))
        .await
        .unwrap();
    assert_eq!(r.into_inner().overall_code, Code::Ok as i32);
    let spans = receiver
        .trace(sampled, |s| STAGES.iter().all(|n| names(s).contains(n)))
        .await;
    assert_eq!(spans.len(), STAGES.len(), "{:?}", names(&spans));
    let [wire, route, actor, commit, apply] = STAGES.map(|n| named(&spans, n));
    assert_eq!(
        wire["parent_span_id"], "00f067aa0ba902b7",
        "the caller's span"
    );
    assert_eq!(wire["kind"], 2, "SERVER");
    assert_eq!(wire["attributes"]["rpc.system"], "grpc");
    assert_eq!(wire["attributes"]["rpc.method"], "ShouldRateLimit");
    assert_eq!(wire["resource"]["service.name"], "quotad");
    within(route, wire);
    assert!(
        ns(route, "end_ns") <= ns(wire, "end_ns"),
        "a decision routes within its call"
    );
    assert!(route["events"][0] == "served here", "{route:#?}");
    within(actor, route);
    assert_eq!(actor["attributes"]["quotad.tenant_id"], tenant);
    assert_eq!(actor["attributes"]["quotad.call"], "increment_all");
    within(commit, actor);
    // Strict: the call is answered after its commit.
    assert!(
        ns(commit, "end_ns") <= ns(wire, "end_ns"),
        "{commit:#?} {wire:#?}"
    );
    assert!(commit["attributes"]["quotad.log_index"].as_i64().unwrap() > 0);
    assert!(commit["attributes"]["quotad.entry_ops"].as_i64().unwrap() >= 1);
    assert_eq!(commit["events"], json!(["handed to raft"]));
    within(apply, commit);
    assert!(ns(apply, "end_ns") <= ns(commit, "end_ns"));
    // The unsampled request, sent before, left nothing (spans leave in order).
    assert!(
        receiver.all().iter().all(|s| s["trace_id"] != unsampled),
        "the caller's choice not to sample is followed"
    );

    // Without a caller's decision, the ratio (1 here) starts a trace.
    let before: usize = receiver.all().len();
    let r = rls.should_rate_limit(ask(None)).await.unwrap();
    assert_eq!(r.into_inner().overall_code, Code::Ok as i32);
    let deadline = Instant::now() + Duration::from_secs(60);
    let root = loop {
        let new: Vec<Value> = receiver.all().split_off(before);
        if let Some(root) = new
            .iter()
            .find(|s| s["name"] == STAGES[0] && s["parent_span_id"] == "")
        {
            break root.clone();
        }
        assert!(Instant::now() < deadline, "no root span: {new:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let trace = root["trace_id"].as_str().unwrap().to_string();
    let spans = receiver
        .trace(&trace, |s| STAGES.iter().all(|n| names(s).contains(n)))
        .await;
    within(named(&spans, "quotad.route"), &root);

    // A Stream call is open long after its call span ends: each batch of
    // its messages is traced on its own, under the call's span.
    let before = receiver.all().len();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::StreamRequest {
        id: 7,
        item: Some(pb::BatchItem {
            item: Some(pb::batch_item::Item::Increment(pb::IncrementRequest {
                tenant_id: tenant.clone(),
                quota: "api_requests".into(),
                amount: 1,
                ..Default::default()
            })),
        }),
    })
    .await
    .unwrap();
    drop(tx);
    let mut answers = node
        .grpc()
        .await
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().expect("an answer");
    assert_eq!(answer.id, 7);
    let deadline = Instant::now() + Duration::from_secs(60);
    let batch = loop {
        let new: Vec<Value> = receiver.all().split_off(before);
        if let Some(b) = new.iter().find(|s| s["name"] == "quotad.stream.batch") {
            break b.clone();
        }
        assert!(Instant::now() < deadline, "no stream batch span: {new:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(batch["attributes"]["quotad.items"], 1);
    let trace = batch["trace_id"].as_str().unwrap().to_string();
    let stages = [
        "quotad.v1.QuotaService/Stream",
        "quotad.stream.batch",
        "quotad.route",
        "quotad.actor",
        "quotad.commit",
        "quotad.apply",
    ];
    let spans = receiver
        .trace(&trace, |s| stages.iter().all(|n| names(s).contains(n)))
        .await;
    let [call, batch, route, actor, commit, apply] = stages.map(|n| named(&spans, n));
    assert_eq!(batch["parent_span_id"], call["span_id"]);
    within(route, batch);
    within(actor, route);
    within(commit, actor);
    within(apply, commit);
}

/// A request sent to a follower is forwarded to the group's leader: its
/// trace continues there (the forward carries `traceparent`), the leader's
/// spans under a SERVER span of the forward, from another instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_decision_stays_one_trace_across_nodes() {
    let receiver = Receiver::start();
    let args = otlp_args(&receiver);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut extra = vec!["--shards", "1"];
    extra.extend(args);
    let c = TestCluster::start(2, &extra).await;
    let tenant = create_tenant(c.node(0), "forwarded", "STARTER").await;
    set_quota(c.node(0), &tenant, "api_requests", json!({"limit": 100})).await;
    let client = common::quota_client(c.grpc_addrs()).await;
    let (group, _) = client.route(&tenant);
    let leader = c.index_of(c.leader_of(group).await);
    let follower = (leader + 1) % 2;
    let mut grpc = common::grpc_at(&c.node(follower).grpc).await;
    let trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let mut req = tonic::Request::new(pb::IncrementRequest {
        tenant_id: tenant.clone(),
        quota: "api_requests".into(),
        amount: 1,
        consistency: pb::Consistency::Strict as i32,
        ..Default::default()
    });
    req.metadata_mut()
        .insert("traceparent", traceparent(trace, "10f067aa0ba902b7", true));
    let d = grpc
        .increment(req)
        .await
        .expect("a forwarded increment")
        .into_inner();
    assert!(d.allowed, "{d:?}");

    let forward = "quotad.cluster.v1.Cluster/Forward";
    let wanted = [
        "quotad.v1.QuotaService/Increment",
        "quotad.route",
        forward,
        "quotad.actor",
        "quotad.commit",
        "quotad.apply",
    ];
    let spans = receiver
        .trace(trace, |s| wanted.iter().all(|n| names(s).contains(n)))
        .await;
    let [wire, route, served, actor, commit, apply] = wanted.map(|n| named(&spans, n));
    within(route, wire);
    let hop = route["events"][0].as_str().unwrap();
    assert!(hop.starts_with("forwarded to the leader at "), "{route:#?}");
    within(served, route);
    assert_eq!(served["kind"], 2, "SERVER");
    within(actor, served);
    within(commit, actor);
    within(apply, commit);
    let instance = |s: &Value| {
        s["resource"]["service.instance.id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(instance(wire), instance(route));
    assert_ne!(
        instance(wire),
        instance(served),
        "the leader is another node"
    );
    assert_eq!(instance(served), instance(apply));
    assert_eq!(instance(served), c.members[leader].id.to_string());
}
