//! The README's "Five-minute walkthrough", run as written against a real
//! node, with the outcomes it promises asserted.
//!
//! The section is read from README.md when the test runs: its `sh` code
//! blocks in order, and the closing paragraph's promise that `quotad usage
//! "$TENANT"` reports the same after a `kill -9` and a restart. Editing the
//! README so that the walkthrough no longer works fails this test.
//!
//! - The first block (`cargo run --release -- serve ARGS`) is not run
//!   through cargo: the test starts the binary cargo built for it with the
//!   same ARGS, followed by listen addresses on 127.0.0.1 with ports chosen
//!   by the OS, and with no `JWT_SECRET`, so that the node generates its
//!   secret into its data dir as the README says.
//! - The other blocks run in one `bash --noprofile --norc`, command after
//!   command (so their variables carry over), in a directory whose
//!   `target/release/quotad` is the built binary (the README's
//!   `export PATH=$PWD/target/release:$PATH` works as written). Its
//!   environment points the CLI at the node (`QUOTAD_HTTP`, `QUOTAD_GRPC`:
//!   the README relies on their defaults), has no `JWT_SECRET`, and has
//!   grpcurl on `PATH` (`scripts/test.sh` installs it from PyPI beside the
//!   test Python, `QUOTAD_TEST_PYTHON`).
//!
//! The commands are the README's text with only these substitutions:
//!
//! | README             | run as                             |
//! |--------------------|------------------------------------|
//! | `/tmp/quotad-demo` | a fresh temporary data dir         |
//! | `localhost:8080`   | `localhost:<the node's REST port>` |
//! | `127.0.0.1:50051`  | `<the node's gRPC host:port>`      |
//!
//! Each command and its output are printed, so a failure can be read in
//! the test's captured output.
mod common;

use common::Node;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
const SECTION: &str = "## Five-minute walkthrough";
/// What the first block must start with: it is replaced by the built binary.
const SERVE: &str = "cargo run --release -- serve";
const README_DATA_DIR: &str = "/tmp/quotad-demo";
const README_HTTP: &str = "localhost:8080";
const README_GRPC: &str = "127.0.0.1:50051";
/// Printed by the shell after each command, with the command's exit status.
const DONE: &str = "@@quotad-done:";
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The one command whose answer is meant to be a refusal: bob, a viewer,
/// renaming the tenant.
const REFUSED: &str = r#""name": "Bob Inc""#;

#[test]
fn readme_walkthrough_runs_as_written() {
    let readme = std::fs::read_to_string(README).unwrap_or_else(|e| panic!("read {README}: {e}"));
    let walkthrough = Walkthrough::parse(&readme);
    let (serve_block, shell_blocks) = walkthrough
        .blocks
        .split_first()
        .unwrap_or_else(|| panic!("the README's {SECTION:?} has no ```sh block"));
    let grpcurl = common::grpcurl();
    let grpcurl_dir = grpcurl
        .parent()
        .unwrap_or_else(|| panic!("grpcurl at {} has no directory", grpcurl.display()));

    let data = tempfile::tempdir().expect("temporary data dir");
    let serve_args = serve_args(serve_block, data.path());
    let node = Node::start_without_secret(data.path(), &serve_args);
    let work = work_dir();
    let mut shell = Shell::start(work.path(), &node, grpcurl_dir);

    let readme_to_node = Substitutions::for_node(data.path(), &node);
    let mut ran = Vec::new();
    for block in shell_blocks {
        for command in split_commands(block) {
            ran.push(shell.run(&command, &readme_to_node));
        }
    }
    for r in &ran {
        check_ran_cleanly(r);
    }
    check_expectations(&ran);
    check_tenant_is_a_uuid(&mut shell);

    // "Kill the node with `kill -9` and start it again: `quotad usage
    // "$TENANT"` still reports every acknowledged increment."
    let before = shell.run(&walkthrough.after_restart, &readme_to_node);
    check_ran_cleanly(&before);
    node.kill9();
    let node = Node::start_without_secret(data.path(), &serve_args);
    shell.point_at(&node);
    let after = shell.run(
        &walkthrough.after_restart,
        &Substitutions::for_node(data.path(), &node),
    );
    check_ran_cleanly(&after);
    assert_eq!(
        after.output, before.output,
        "`{}` after kill -9 and a restart differs from before",
        after.command
    );
    expect_used(&after, "3");

    drop(shell);
    drop(node);
}

// ---------------------------------------------------------------------------
// The README's walkthrough section

struct Walkthrough {
    /// The text of its `sh` code blocks, in order.
    blocks: Vec<String>,
    /// The command the closing paragraph promises survives a `kill -9`.
    after_restart: String,
}

impl Walkthrough {
    /// The section from its heading to the next `## ` heading: its `sh`
    /// code blocks, and the backticked `quotad usage ...` of its prose
    /// paragraph about `kill -9`.
    fn parse(readme: &str) -> Walkthrough {
        let mut lines = readme.lines().skip_while(|l| l.trim_end() != SECTION);
        assert!(lines.next().is_some(), "README.md has no line {SECTION:?}");
        let mut blocks = Vec::new();
        let mut prose = Vec::new();
        let mut block: Option<String> = None;
        for line in lines.take_while(|l| !l.starts_with("## ")) {
            let fence = line.trim();
            if let Some(text) = block.as_mut() {
                if fence == "```" {
                    blocks.push(std::mem::take(text));
                    block = None;
                } else {
                    text.push_str(line);
                    text.push('\n');
                }
            } else if fence == "```sh" {
                block = Some(String::new());
            } else {
                prose.push(line);
            }
        }
        assert!(
            block.is_none(),
            "a ```sh block of the README's {SECTION:?} is never closed"
        );
        Walkthrough {
            blocks,
            after_restart: after_restart_command(&prose),
        }
    }
}

/// The backticked `quotad usage ...` of the paragraph that mentions
/// `kill -9`.
fn after_restart_command(prose: &[&str]) -> String {
    // Paragraphs are separated by blank lines; a line break inside one is
    // a space, as in Markdown (a code span may be wrapped).
    let paragraphs: Vec<String> = prose
        .split(|l| l.trim().is_empty())
        .map(|lines| lines.join(" "))
        .collect();
    let paragraph = paragraphs
        .iter()
        .find(|p| p.contains("kill -9"))
        .unwrap_or_else(|| {
            panic!("the README's {SECTION:?} no longer has its paragraph about `kill -9`")
        });
    paragraph
        .split('`')
        .skip(1)
        .step_by(2) // the text inside backticks
        .find(|span| span.starts_with("quotad usage"))
        .unwrap_or_else(|| {
            panic!(
                "the README's paragraph about `kill -9` names no `quotad usage ...`: {paragraph}"
            )
        })
        .to_string()
}

/// The first block's `serve` arguments, with the README's data dir
/// replaced by `data_dir`, then listen addresses with OS-chosen ports.
fn serve_args(block: &str, data_dir: &Path) -> Vec<String> {
    let commands = split_commands(block);
    let [command] = commands.as_slice() else {
        panic!("the walkthrough's first block should be the one command starting the node: {block}")
    };
    assert!(
        command.starts_with(SERVE),
        "the walkthrough's first block should start with `{SERVE}`: {command}"
    );
    // Split on whitespace like the shell would only if nothing is quoted,
    // escaped or expanded.
    assert!(
        !command.contains(['\'', '"', '\\', '$', '`']),
        "the walkthrough's serve command is too clever to split here: {command}"
    );
    let data_dir = data_dir.to_str().expect("a UTF-8 temporary path");
    let mut args: Vec<String> = command[SERVE.len()..]
        .split_whitespace()
        .map(|arg| arg.replace(README_DATA_DIR, data_dir))
        .collect();
    args.extend(Node::local_args());
    args
}

/// A block's logical commands: blank lines and comment lines between
/// commands are skipped; lines accumulate until they end without a `\`
/// and `bash -n` accepts them (so a `$(`, a quote or a `for ... do` spans
/// lines until it is closed).
fn split_commands(block: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut pending: Vec<&str> = Vec::new();
    for line in block.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        pending.push(line);
        let text = pending.join("\n");
        if !line.ends_with('\\') && bash_accepts(&text) {
            commands.push(text);
            pending.clear();
        }
    }
    assert!(
        pending.is_empty(),
        "this README walkthrough block never becomes a complete bash command (from {:?}):\n{block}",
        pending.join("\n")
    );
    commands
}

/// Whether `bash -n` parses `text` as complete commands.
fn bash_accepts(text: &str) -> bool {
    Command::new("bash")
        .args(["--noprofile", "--norc", "-n", "-c", text])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run bash -n")
        .success()
}

/// The README's addresses and data dir, and what they are in this test.
struct Substitutions(Vec<(&'static str, String)>);

impl Substitutions {
    fn for_node(data_dir: &Path, node: &Node) -> Substitutions {
        let data_dir = data_dir.to_str().expect("a UTF-8 temporary path");
        let http_port = host_port(&node.http)
            .rsplit_once(':')
            .map(|(_, port)| port)
            .unwrap_or_else(|| panic!("no port in {}", node.http));
        Substitutions(vec![
            (README_DATA_DIR, data_dir.to_string()),
            (README_HTTP, format!("localhost:{http_port}")),
            (README_GRPC, host_port(&node.grpc).to_string()),
        ])
    }

    fn apply(&self, command: &str) -> String {
        self.0.iter().fold(command.to_string(), |text, (from, to)| {
            text.replace(*from, to)
        })
    }
}

/// `127.0.0.1:1234` of `http://127.0.0.1:1234`.
fn host_port(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

/// A directory whose `target/release/quotad` is the binary under test.
fn work_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary work dir");
    let release = dir.path().join("target/release");
    std::fs::create_dir_all(&release).expect("create target/release");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_quotad"), release.join("quotad"))
        .expect("link target/release/quotad to the built binary");
    dir
}

// ---------------------------------------------------------------------------
// One bash for the whole walkthrough

/// A command as the README has it, what it printed (stdout and stderr) and
/// its exit status.
struct Ran {
    command: String,
    output: String,
    status: i32,
}

struct Shell {
    child: Child,
    stdin: ChildStdin,
    /// Its output, line by line, from a reader thread.
    lines: Receiver<String>,
}

impl Shell {
    fn start(dir: &Path, node: &Node, grpcurl_dir: &Path) -> Shell {
        let mut path = vec![grpcurl_dir.to_path_buf()];
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let mut child = Command::new("bash")
            .args(["--noprofile", "--norc"])
            .current_dir(dir)
            // The README's `$PWD/target/release`: this directory, not the
            // test's.
            .env("PWD", dir)
            .env("PATH", std::env::join_paths(path).expect("PATH"))
            .env("QUOTAD_HTTP", &node.http)
            .env("QUOTAD_GRPC", &node.grpc)
            .env_remove("JWT_SECRET")
            // Its own process group, so that dropping the shell also ends
            // whatever command it is stuck in.
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start bash");
        let stdin = child.stdin.take().expect("bash's stdin");
        let stdout = child.stdout.take().expect("bash's stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = Vec::new();
            while stdout.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']).to_string();
                if tx.send(text).is_err() {
                    break;
                }
                line.clear();
            }
        });
        let mut shell = Shell {
            child,
            stdin,
            lines,
        };
        // Error messages are output too: the checks read them.
        shell.send("exec 2>&1\n");
        shell
    }

    fn send(&mut self, text: &str) {
        self.stdin
            .write_all(text.as_bytes())
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("cannot send to bash ({e}):\n{text}"));
    }

    /// Run the README's `command` (with `substitutions` applied) and wait
    /// for it to finish.
    fn run(&mut self, command: &str, substitutions: &Substitutions) -> Ran {
        let sent = substitutions.apply(command);
        println!("$ {sent}");
        self.send(&format!("{sent}\necho \"{DONE}$?\"\n"));
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut output = String::new();
        loop {
            let line = match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "README command did not finish within {COMMAND_TIMEOUT:?}:\n{command}\n\
                     output so far:\n{output}"
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("bash exited during README command:\n{command}\noutput:\n{output}")
                }
            };
            // Output without a final newline (`curl -s`'s JSON) shares a
            // line with the marker.
            if let Some((last, status)) = split_done(&line) {
                if !last.is_empty() {
                    output.push_str(last);
                    output.push('\n');
                }
                print!("{output}");
                println!("[exit {status}]");
                return Ran {
                    command: command.to_string(),
                    output,
                    status,
                };
            }
            output.push_str(&line);
            output.push('\n');
        }
    }

    /// Point the CLI at a restarted node (new ports).
    fn point_at(&mut self, node: &Node) {
        let ran = self.run(
            &format!(
                "export QUOTAD_HTTP={}; export QUOTAD_GRPC={}",
                node.http, node.grpc
            ),
            &Substitutions(Vec::new()),
        );
        check_ran_cleanly(&ran);
    }
}

/// The output before the done marker, and the exit status after it.
fn split_done(line: &str) -> Option<(&str, i32)> {
    let (before, status) = line.rsplit_once(DONE)?;
    Some((before, status.trim().parse().ok()?))
}

impl Drop for Shell {
    fn drop(&mut self) {
        // The whole process group: bash and any command still running.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// What the README promises

/// Every command: exit 0, no panic, no CLI error, and every JSON envelope
/// a success (except bob's refusal).
fn check_ran_cleanly(r: &Ran) {
    ensure(r, r.status == 0, &format!("exited with {}", r.status));
    ensure(r, !r.output.contains("panicked"), "panicked");
    ensure(
        r,
        !r.output.lines().any(|l| l.starts_with("error:")),
        "printed an error",
    );
    if !r.command.contains(REFUSED)
        && let Some(envelope) = json_in(&r.output).filter(|v| v.get("success").is_some())
    {
        ensure(
            r,
            envelope["success"] == json!(true),
            "answered an unsuccessful envelope",
        );
    }
}

/// A check of the command(s) whose README text contains `key`.
struct Expectation {
    key: &'static str,
    check: fn(&Ran),
}

fn expect(key: &'static str, check: fn(&Ran)) -> Expectation {
    Expectation { key, check }
}

/// What each step of the walkthrough should answer. Every key must still
/// name a command of the README.
fn expectations() -> Vec<Expectation> {
    vec![
        // Its id goes into $TENANT (checked with `echo` afterwards).
        expect("tenant create", |r| {
            ensure(r, r.output.trim().is_empty(), "printed something")
        }),
        expect(r#"quotad tenant get "$TENANT""#, |r| {
            ensure(
                r,
                r.output.contains("America/New_York"),
                "no America/New_York",
            );
            ensure(r, r.output.contains("FREE"), "no FREE tier");
        }),
        expect(r#"quotad quota get "$TENANT""#, |r| {
            let limit = table_cell(&r.output, "api_requests", "LIMIT");
            ensure(
                r,
                limit.as_deref() == Some("10000"),
                &format!("api_requests' LIMIT is {limit:?}, not the FREE tier's 10000"),
            );
        }),
        expect("for i in 1 2 3 4", |r| {
            let allowed: Vec<&str> = r
                .output
                .lines()
                .filter_map(|l| l.strip_prefix("allowed"))
                .map(str::trim)
                .collect();
            ensure(
                r,
                allowed == ["true", "true", "true", "false"],
                &format!("allowed {allowed:?}, not three times true, then false"),
            );
            ensure(
                r,
                r.output
                    .lines()
                    .any(|l| l.starts_with("verdict") && l.contains("denied")),
                "no `verdict denied`",
            );
        }),
        expect(r#"quotad usage "$TENANT""#, |r| expect_used(r, "3")),
        expect("/quotas | python3 -m json.tool", |r| {
            let data = success_data(r);
            let api_requests = data
                .as_array()
                .and_then(|quotas| quotas.iter().find(|q| q["type"] == "api_requests"));
            ensure(r, api_requests.is_some(), "no api_requests quota in data");
            let q = api_requests.expect("checked");
            ensure(r, q["limit"] == json!(3), "api_requests' limit is not 3");
            ensure(r, q["usage"] == json!(3), "api_requests' usage is not 3");
        }),
        expect("quotas/llm_tokens", |r| {
            let data = success_data(r);
            ensure(r, data["limit"] == json!(1_000_000), "limit is not 1000000");
            ensure(
                r,
                data["softLimit"] == json!(800_000),
                "softLimit is not 800000",
            );
            ensure(
                r,
                data["action"] == "allow_overage",
                "action is not allow_overage",
            );
        }),
        expect(r#""userId": "bob""#, |r| {
            // The answer is the tenant's member list (a single member
            // would do as well).
            let data = success_data(r);
            let members = data.as_array().cloned().unwrap_or_else(|| vec![data]);
            ensure(
                r,
                members
                    .iter()
                    .any(|m| m["userId"] == "bob" && m["role"] == "viewer"),
                "bob is not a viewer",
            );
        }),
        expect(r#"{"tier": "STARTER"}"#, |r| expect_tier(r, "STARTER")),
        // An admin action taken after the tenant's api_requests were used
        // up is in the audit chain.
        expect("/audit?", |r| {
            let data = success_data(r);
            ensure(
                r,
                data["chain"]["valid"] == json!(true),
                "the chain is not valid",
            );
            let events = data["events"].as_array().cloned().unwrap_or_default();
            ensure(r, !events.is_empty(), "no audit events");
            ensure(
                r,
                events.iter().any(|e| e["action"] == "tenant.tier_changed"),
                "no tenant.tier_changed event",
            );
        }),
        expect("usage?quota=api_requests", |r| {
            let data = success_data(r);
            ensure(r, data["statistics"].is_object(), "no statistics object");
        }),
        // A truncated document (`head -c 300`): only its start.
        expect("openapi.json", |r| {
            ensure(r, r.output.starts_with(r#"{"openapi":"3"#), "not OpenAPI 3")
        }),
        expect("grep ^tenant_", |r| {
            ensure(
                r,
                r.output.contains("tenant_count"),
                "no tenant_count metric",
            )
        }),
        expect(r#"{"status": "SUSPENDED"}"#, |r| {
            expect_status(r, "SUSPENDED")
        }),
        expect("quotad check", |r| {
            ensure(
                r,
                r.output.contains("suspended"),
                "the reason is not the suspension",
            )
        }),
        expect(r#"{"status": "ACTIVE"}"#, |r| expect_status(r, "ACTIVE")),
        expect(r#"{"tier": "PROFESSIONAL"}"#, |r| {
            expect_tier(r, "PROFESSIONAL")
        }),
        expect(r#"{"domain": "#, |r| {
            success_data(r);
        }),
        expect("/verify", |r| {
            success_data(r);
        }),
        expect("-XDELETE", |r| expect_status(r, "DELETED")),
        expect("/restore", |r| expect_status(r, "ACTIVE")),
        // bob is a viewer: he may look but not touch.
        expect(REFUSED, |r| {
            let envelope = json_in(&r.output);
            ensure(r, envelope.is_some(), "no JSON answer");
            let envelope = envelope.expect("checked");
            ensure(
                r,
                envelope["success"] == json!(false),
                "bob was not refused",
            );
            ensure(
                r,
                envelope["error"]["code"] == "PERMISSION_DENIED",
                "the refusal is not PERMISSION_DENIED",
            );
        }),
        // The quota is used up: a decision, not an error (proto3 JSON
        // leaves out `allowed: false`).
        expect("grpcurl", |r| {
            ensure(r, r.output.contains("\"verdict\""), "no verdict")
        }),
    ]
}

fn check_expectations(ran: &[Ran]) {
    for expectation in expectations() {
        let mut matched = false;
        for r in ran.iter().filter(|r| r.command.contains(expectation.key)) {
            matched = true;
            (expectation.check)(r);
        }
        assert!(
            matched,
            "the README no longer has a command containing {:?}",
            expectation.key
        );
    }
}

/// `$TENANT`, set by the walkthrough's `tenant create`, is a tenant id.
fn check_tenant_is_a_uuid(shell: &mut Shell) {
    let r = shell.run(r#"echo "$TENANT""#, &Substitutions(Vec::new()));
    check_ran_cleanly(&r);
    ensure(&r, is_uuid(r.output.trim()), "$TENANT is not a UUID");
}

/// 36 characters: hex digits in groups of 8-4-4-4-12 joined by dashes.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn expect_used(r: &Ran, used: &str) {
    let cell = table_cell(&r.output, "api_requests", "USED");
    ensure(
        r,
        cell.as_deref() == Some(used),
        &format!("api_requests' USED is {cell:?}, not {used}"),
    );
}

fn expect_tier(r: &Ran, tier: &str) {
    let data = success_data(r);
    ensure(
        r,
        data["tenant"]["tier"] == tier,
        &format!("the tenant's tier is not {tier}"),
    );
}

fn expect_status(r: &Ran, status: &str) {
    let data = success_data(r);
    ensure(
        r,
        data["status"] == status,
        &format!("the tenant's status is not {status}"),
    );
}

/// The `data` of a successful JSON envelope in the output.
fn success_data(r: &Ran) -> Value {
    let envelope = json_in(&r.output);
    ensure(r, envelope.is_some(), "no JSON answer");
    let envelope = envelope.expect("checked");
    ensure(r, envelope["success"] == json!(true), "not a success");
    envelope["data"].clone()
}

fn ensure(r: &Ran, ok: bool, what: &str) {
    assert!(
        ok,
        "README command\n{}\n{what}; its output:\n{}",
        r.command, r.output
    );
}

// ---------------------------------------------------------------------------
// Reading outputs

/// The JSON document an output is, or the first one in it.
fn json_in(output: &str) -> Option<Value> {
    let output = output.trim();
    if let Ok(value) = serde_json::from_str::<Value>(output) {
        return Some(value);
    }
    let start = output.find(['{', '['])?;
    serde_json::Deserializer::from_str(&output[start..])
        .into_iter::<Value>()
        .next()?
        .ok()
}

/// The cell under `column` in the row starting with `row` of an aligned
/// table (`quotad quota get`, `quotad usage`), whose header starts with
/// QUOTA. Columns start where their header does.
fn table_cell(output: &str, row: &str, column: &str) -> Option<String> {
    let mut lines = output.lines().skip_while(|l| !l.starts_with("QUOTA "));
    let header: Vec<char> = lines.next()?.chars().collect();
    let starts: Vec<usize> = (0..header.len())
        .filter(|&i| !header[i].is_whitespace() && (i == 0 || header[i - 1].is_whitespace()))
        .collect();
    let names: Vec<String> = starts
        .iter()
        .map(|&s| {
            header[s..]
                .iter()
                .take_while(|c| !c.is_whitespace())
                .collect()
        })
        .collect();
    let index = names.iter().position(|n| n == column)?;
    let cells = |line: &str| -> Vec<String> {
        let chars: Vec<char> = line.chars().collect();
        (0..starts.len())
            .map(|i| {
                let from = starts[i].min(chars.len());
                let to = starts
                    .get(i + 1)
                    .map_or(chars.len(), |&s| s.min(chars.len()));
                chars[from..to]
                    .iter()
                    .collect::<String>()
                    .trim()
                    .to_string()
            })
            .collect()
    };
    lines
        .map(cells)
        .find(|row_cells| row_cells[0] == row)
        .map(|row_cells| row_cells[index].clone())
}
