//! Black-box: the `quotad` command line as a user meets it: help texts,
//! input errors, error labels, denial reasons, closed pipes.
mod common;

use common::{Node, create_tenant, set_quota};
use serde_json::json;
use std::process::{Command, Output, Stdio};

/// `quotad ARGS` against `node` as the operator.
fn quotad(node: &Node, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quotad"))
        .args(args)
        .env("QUOTAD_HTTP", &node.http)
        .env("QUOTAD_GRPC", &node.grpc)
        .env("QUOTAD_TOKEN", common::operator())
        .output()
        .expect("run quotad")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn serve_help_lists_node_settings_only_and_names_jwt_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_quotad"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = text(&out.stdout);
    for client_only in ["--http ", "--grpc ", "--json", "--token"] {
        assert!(
            !help.contains(client_only),
            "serve --help lists the client flag {client_only}:\n{help}"
        );
    }
    assert!(help.contains("JWT_SECRET"), "{help}");
    assert!(help.contains("--grpc-addr"), "{help}");
    // The client flags are still there for client commands, before or
    // after the subcommand.
    let out = Command::new(env!("CARGO_BIN_EXE_quotad"))
        .args(["tenant", "get", "--help"])
        .output()
        .unwrap();
    let help = text(&out.stdout);
    assert!(help.contains("--json") && help.contains("--http"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_read_the_same_over_rest_and_grpc_and_denials_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let t = create_tenant(&node, "cli-errors", "FREE").await;

    // A negative limit: a plain statement, not a parser puzzle.
    let out = quotad(
        &node,
        &["quota", "set", &t, "api_requests", "--limit", "-1"],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(
        err.trim(),
        "error: --limit -1: must be 0 or more or \"unlimited\""
    );

    // The same error label over REST and over gRPC: CODE: message (…).
    let missing = "00000000-0000-4000-8000-000000000000";
    let rest = text(&quotad(&node, &["tenant", "get", missing]).stderr);
    let grpc = text(&quotad(&node, &["usage", missing]).stderr);
    for (via, err) in [("HTTP 404", &rest), ("gRPC", &grpc)] {
        assert!(
            err.starts_with("error: NOT_FOUND: ") && err.trim_end().ends_with(&format!("{via})")),
            "{err}"
        );
    }

    // A denied increment says why.
    set_quota(&node, &t, "api_requests", json!({"limit": 1})).await;
    let first = text(&quotad(&node, &["increment", &t, "api_requests"]).stdout);
    assert!(!first.contains("reason"), "{first}");
    let out = quotad(&node, &["increment", &t, "api_requests"]);
    assert!(out.status.success());
    let denied = text(&out.stdout);
    let reason = denied
        .lines()
        .find_map(|l| l.strip_prefix("reason"))
        .unwrap_or_else(|| panic!("no reason line:\n{denied}"))
        .trim();
    assert!(
        reason.contains("limit of 1") && reason.contains("resets at"),
        "{denied}"
    );
}

/// `quotad … | head -1`: the reader closes the pipe; the CLI ends quietly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_every_printing_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let t = create_tenant(&node, "cli-pipe", "FREE").await;
    let token = common::operator();
    let commands: [&[&str]; 6] = [
        &["quota", "get", &t],
        &["--json", "quota", "get", &t],
        &["tenant", "get", &t],
        &["usage", &t],
        &["check", &t, "api_requests"],
        &["token", "--sub", "x"],
    ];
    for args in commands {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quotad"))
            .args(args)
            .env("QUOTAD_HTTP", &node.http)
            .env("QUOTAD_GRPC", &node.grpc)
            .env("QUOTAD_TOKEN", &token)
            .env("JWT_SECRET", common::SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before anything is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert!(
            out.status.success() && err.is_empty(),
            "quotad {args:?} on a closed pipe: {:?}\n{err}",
            out.status
        );
    }
}

/// The quota model from the command line: windows and scope rules set,
/// a grant added and voided, scoped increments, the live scopes listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_windows_scopes_and_grants_and_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let t = create_tenant(&node, "cli-levels", "ENTERPRISE").await;
    let ok = |args: &[&str]| {
        let out = quotad(&node, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    ok(&[
        "quota",
        "set",
        &t,
        "chat",
        "--limit",
        "1000",
        "--period",
        "monthly",
        "--window",
        "50/second",
        "--scope-default",
        "3/daily",
        "--scope-override",
        "premium_*=10/daily",
        "--rollover",
        "true",
    ]);
    let shown = ok(&["quota", "get", &t, "chat"]);
    assert!(shown.contains("chat: also 50 per second"), "{shown}");
    let bad = quotad(
        &node,
        &[
            "quota", "set", &t, "chat", "--limit", "10", "--window", "50",
        ],
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("--window"),
        "{}",
        text(&bad.stderr)
    );

    let added = ok(&[
        "quota", "grants", &t, "chat", "add", "--amount", "25", "--reason", "promo",
    ]);
    assert!(added.contains("25") && added.contains("active"), "{added}");
    for (user, n) in [("alice", "3"), ("premium_bob+1", "7")] {
        let out = ok(&["increment", &t, "chat", "--amount", n, "--scope", user]);
        assert!(out.contains("true"), "{out}");
    }
    let refused = ok(&["increment", &t, "chat", "--scope", "alice"]);
    assert!(refused.contains("scope alice by rule default"), "{refused}");
    assert!(
        refused.contains("the limit of 3 of scope alice (rule default), 0 left"),
        "{refused}"
    );
    let scopes = ok(&["quota", "scopes", &t, "chat"]);
    let first = scopes.lines().nth(1).unwrap_or_default();
    assert!(first.starts_with("premium_bob+1"), "{scopes}");
    assert!(scopes.contains("2 live scope values"), "{scopes}");
    let one = ok(&["quota", "get", &t, "chat", "--scope", "premium_bob+1"]);
    assert!(
        one.contains("scope premium_bob+1 by rule premium_*: 7 used of 10, 3 left"),
        "{one}"
    );
    let voided = ok(&["quota", "grants", &t, "chat", "void", "1"]);
    assert!(voided.contains("voided"), "{voided}");
    let listed = ok(&["quota", "grants", &t, "chat"]);
    assert!(listed.contains("voided"), "{listed}");
}
