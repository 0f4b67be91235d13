//! TLS on a node's ports with certificates from `quotad certs dev`: who
//! gets through (the dev CA's clients, with a client certificate where one
//! is required), who does not (plaintext, another CA, no client
//! certificate), and a certificate replaced on disk served without a
//! restart.
mod common;

use common::Node;
use quotad_proto::v1 as pb;
use quotad_proto::v1::quota_service_client::QuotaServiceClient;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// `quotad certs dev --out DIR`.
fn dev_certs(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_quotad"))
        .args(["certs", "dev", "--hosts", "127.0.0.1,localhost", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "ca.pem",
        "node.pem",
        "node-key.pem",
        "client.pem",
        "client-key.pem",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
}

/// How a test client connects.
struct Client<'a> {
    /// `None`: plaintext.
    trust: Option<&'a Path>,
    /// The directory of `client.pem` and `client-key.pem` to present.
    identity: Option<&'a Path>,
}

/// A call through the gRPC port: `Ok` once the service answered (here
/// NOT_FOUND for a tenant that does not exist), else why not.
async fn call(port: &str, c: Client<'_>) -> Result<(), String> {
    call_as(port, c, common::service_bearer()).await
}

/// [`call`] with `bearer` as the call's credential.
async fn call_as(
    port: &str,
    c: Client<'_>,
    bearer: quotad_proto::credential::Bearer,
) -> Result<(), String> {
    let scheme = if c.trust.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5));
    if let Some(ca) = c.trust {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(
            std::fs::read(ca.join("ca.pem")).unwrap(),
        ));
        if let Some(id) = c.identity {
            tls = tls.identity(Identity::from_pem(
                std::fs::read(id.join("client.pem")).unwrap(),
                std::fs::read(id.join("client-key.pem")).unwrap(),
            ));
        }
        endpoint = endpoint.tls_config(tls).unwrap();
    }
    let channel = tokio::time::timeout(Duration::from_secs(10), endpoint.connect())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut client = QuotaServiceClient::new(bearer.on(channel));
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        client.check(pb::CheckRequest {
            tenant_id: uuid::Uuid::new_v4().to_string(),
            quota: "api_requests".into(),
            amount: 1,
            ..Default::default()
        }),
    )
    .await
    .map_err(|_| "call timed out".to_string())?;
    match r {
        Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// `GET /healthz` on the REST port with Python's ssl module, trusting `ca`
/// (or in plaintext): the status, or the error.
fn rest_healthz(port: &str, ca: Option<&Path>) -> Result<u16, String> {
    let python = std::env::var("QUOTAD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = r#"
import ssl, sys, urllib.request
port, ca = sys.argv[1], sys.argv[2]
if ca:
    ctx = ssl.create_default_context(cafile=ca)
    url = f"https://{port}/healthz"
else:
    ctx, url = None, f"http://{port}/healthz"
try:
    print(urllib.request.urlopen(url, context=ctx, timeout=10).status)
except Exception as e:
    print("error:", e)
"#;
    let out = Command::new(python)
        .args(["-c", script, port])
        .arg(ca.map(|p| p.join("ca.pem")).unwrap_or_default())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    text.parse::<u16>().map_err(|_| text)
}

fn copy_set(from: &Path, to: &Path) {
    // Key first: a reload between the two sees a key that does not match
    // the old certificate and keeps serving the old pair.
    for f in ["node-key.pem", "node.pem", "ca.pem"] {
        let tmp = to.join(format!("{f}.new"));
        std::fs::copy(from.join(f), &tmp).unwrap();
        std::fs::rename(&tmp, to.join(f)).unwrap();
    }
}

fn tls_args(live: &Path) -> Vec<String> {
    let p = |f: &str| live.join(f).display().to_string();
    let mut args = Node::local_args();
    args.extend([
        "--tls-cert".into(),
        p("node.pem"),
        "--tls-key".into(),
        p("node-key.pem"),
        "--tls-client-ca".into(),
        p("ca.pem"),
    ]);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_lets_in_the_dev_cas_clients_only_and_a_replaced_certificate_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, live): (PathBuf, PathBuf, PathBuf) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("live"),
    );
    dev_certs(&a);
    dev_certs(&b);
    std::fs::create_dir_all(&live).unwrap();
    copy_set(&a, &live);
    let node = Node::start_with(&dir.path().join("data"), &tls_args(&live));
    let host_port = |url: &str| url.split_once("://").map_or(url, |(_, hp)| hp).to_string();
    let (grpc, http) = (host_port(&node.grpc), host_port(&node.http));

    // The dev CA's client, with its certificate: answered.
    call(
        &grpc,
        Client {
            trust: Some(&a),
            identity: Some(&a),
        },
    )
    .await
    .expect("the dev CA's client gets through");
    // Plaintext, another CA, no client certificate: refused.
    for (what, c) in [
        (
            "plaintext",
            Client {
                trust: None,
                identity: None,
            },
        ),
        (
            "trusting another CA",
            Client {
                trust: Some(&b),
                identity: Some(&a),
            },
        ),
        (
            "no client certificate",
            Client {
                trust: Some(&a),
                identity: None,
            },
        ),
        (
            "another CA's client certificate",
            Client {
                trust: Some(&a),
                identity: Some(&b),
            },
        ),
    ] {
        let r = call(&grpc, c).await;
        assert!(r.is_err(), "{what}: {r:?}");
    }
    // REST: TLS, without client certificates.
    assert_eq!(rest_healthz(&http, Some(&a)), Ok(200));
    assert!(rest_healthz(&http, None).is_err());
    assert!(rest_healthz(&http, Some(&b)).is_err());

    // The CLI over both ports: REST and gRPC over TLS with the dev CA and
    // client certificate; an https:// URL without --ca-cert is refused by
    // name.
    let cli = |extra: &[&str], cmd: &[&str]| {
        let pem = |f: &str| a.join(f).display().to_string();
        let mut c = Command::new(env!("CARGO_BIN_EXE_quotad"));
        c.args(["--http", &node.http, "--grpc", &node.grpc])
            .args(["--token", &common::operator()])
            .args(extra);
        if extra.is_empty() {
            c.args(["--ca-cert", &pem("ca.pem")])
                .args(["--client-cert", &pem("client.pem")])
                .args(["--client-key", &pem("client-key.pem")]);
        }
        c.args(cmd).output().unwrap()
    };
    let out = cli(
        &[],
        &[
            "--json",
            "tenant",
            "create",
            "--slug",
            "cli-tls",
            "--name",
            "CLI over TLS",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tenant = created["data"]["id"]
        .as_str()
        .or(created["id"].as_str())
        .unwrap_or_else(|| panic!("no id in {created}"))
        .to_string();
    let out = cli(&[], &["increment", &tenant, "api_requests"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["--json"], &["tenant", "get", &tenant]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--ca-cert"), "{err}");

    // Replace the files: the new certificate (and client CA) is served
    // within a few seconds, with no restart.
    copy_set(&b, &live);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if call(
            &grpc,
            Client {
                trust: Some(&b),
                identity: Some(&b),
            },
        )
        .await
        .is_ok()
            && rest_healthz(&http, Some(&b)) == Ok(200)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replaced certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        call(
            &grpc,
            Client {
                trust: Some(&a),
                identity: Some(&a)
            }
        )
        .await
        .is_err()
    );
    assert!(
        call(
            &grpc,
            Client {
                trust: Some(&b),
                identity: Some(&a)
            }
        )
        .await
        .is_err()
    );
}

#[test]
fn listening_beyond_loopback_without_tls_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quotad"))
        .args([
            "serve",
            "--grpc-addr",
            "0.0.0.0:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args(["--peer-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("grpc_addr") && err.contains("--allow-plaintext"),
        "{err}"
    );
    // Half a key pair is refused by name.
    let out = Command::new(env!("CARGO_BIN_EXE_quotad"))
        .args(["serve", "--tls-cert", "/nonexistent.pem", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tls_key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_registered_as_a_service_acts_for_any_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = dir.path().join("gateway");
    // Certificates whose client is named gateway.platform.
    let r = Command::new(env!("CARGO_BIN_EXE_quotad"))
        .args(["certs", "dev", "--hosts", "127.0.0.1"])
        .args(["--client-name", "gateway.platform", "--out"])
        .arg(&gateway)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let mut args = tls_args(&gateway);
    args.extend(["--tls-service-identity".into(), "gateway.platform".into()]);
    let node = Node::start_with(&dir.path().join("data"), &args);
    let grpc = node.grpc.split_once("://").unwrap().1.to_string();
    let none = quotad_proto::credential::Bearer::none();
    // Registered certificate, no authorization metadata: a service.
    call_as(
        &grpc,
        Client {
            trust: Some(&gateway),
            identity: Some(&gateway),
        },
        none.clone(),
    )
    .await
    .expect("the registered certificate acts as a service");
    // The same certificate where another name is registered: it is no
    // credential, and the call needs a bearer.
    drop(node);
    let mut args = tls_args(&gateway);
    args.extend(["--tls-service-identity".into(), "billing.platform".into()]);
    let node = Node::start_with(&dir.path().join("data2"), &args);
    let grpc = node.grpc.split_once("://").unwrap().1.to_string();
    let r = call_as(
        &grpc,
        Client {
            trust: Some(&gateway),
            identity: Some(&gateway),
        },
        none.clone(),
    )
    .await;
    assert!(
        r.as_ref().is_err_and(|e| e.contains("Unauthenticated")),
        "{r:?}"
    );
    // With its bearer, the same call goes through.
    call(
        &grpc,
        Client {
            trust: Some(&gateway),
            identity: Some(&gateway),
        },
    )
    .await
    .expect("a service token");
    // Registering a name needs client certificates to be verified.
    let out = Command::new(env!("CARGO_BIN_EXE_quotad"))
        .args(["serve", "--tls-service-identity", "gateway.platform"])
        .arg("--data-dir")
        .arg(dir.path().join("data3"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tls_service_identities"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
