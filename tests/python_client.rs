//! A third-party gRPC client (Python grpcio, stubs generated from proto/)
//! runs the basic flow against the real binary. `scripts/test.sh` installs
//! the Python packages and points `QUOTAD_TEST_PYTHON` at them.
mod common;

use common::Node;
use std::process::Command;

#[test]
fn python_grpcio_client_runs_the_basic_flow() {
    let python = std::env::var("QUOTAD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_grpc = Command::new(&python)
        .args(["-c", "import grpc, grpc_tools, grpc_reflection"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        has_grpc,
        "{python} cannot import grpc, grpc_tools and grpc_reflection: run the README's test command \
         (scripts/test.sh), which installs them, or set QUOTAD_TEST_PYTHON"
    );
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(&python)
        .arg(format!("{root}/tests/python/grpc_flow.py"))
        .args(["--grpc", node.grpc.trim_start_matches("http://")])
        .args(["--http", &node.http])
        .args(["--proto-root", &format!("{root}/proto")])
        .args(["--token", &common::operator()])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("python grpc flow: all good"));
}
