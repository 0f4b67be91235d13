//! `quotad dev-cluster`: a local cluster for trying things out, each node a
//! `quotad serve` child process on 127.0.0.1 with its own data dir.
use crate::cli::out::outln;
use anyhow::{Context, bail};
use clap::Args;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct DevClusterArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Data dirs go under this directory (node-1, node-2, ...).
    #[arg(long, default_value = "./quotad-dev-cluster")]
    dir: PathBuf,
    /// Node i listens on gRPC base+10i, HTTP base+10i+1, peer base+10i+2.
    #[arg(long, default_value_t = 7100)]
    base_port: u16,
    /// Shard groups (first start only).
    #[arg(long, default_value_t = 4)]
    shards: u64,
}

struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub async fn run(a: DevClusterArgs) -> anyhow::Result<()> {
    if !(1..=9).contains(&a.nodes) {
        bail!("nodes: {} is not between 1 and 9", a.nodes);
    }
    let exe = std::env::current_exe().context("finding the quotad binary")?;
    let port = |i: u16, k: u16| a.base_port + 10 * i + k;
    let mut children = Nodes(Vec::new());
    // One token for this cluster's nodes: the first admits the others with it.
    let join_token = format!("{:032x}", rand::random::<u128>());
    // One JWT secret for all of them (node 1's, generated into its data
    // dir unless JWT_SECRET is set), so one token works on every node.
    let first = a.dir.join("node-1");
    let jwt_secret = String::from_utf8(super::secret::resolve(&first, true)?)
        .context("the JWT secret is not text")?;
    let mut rows = Vec::new();
    for i in 1..=a.nodes {
        let dir = a.dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&dir)
            .args(["--grpc-addr", &format!("127.0.0.1:{}", port(i, 0))])
            .args(["--http-addr", &format!("127.0.0.1:{}", port(i, 1))])
            .args(["--peer-addr", &format!("127.0.0.1:{}", port(i, 2))])
            .args(["--shards", &a.shards.to_string()])
            .args(["--join-token", &join_token])
            .env(super::secret::ENV, &jwt_secret)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if i > 1 {
            cmd.args(["--join", &format!("127.0.0.1:{}", port(1, 2))]);
        }
        let mut child = cmd.spawn().context("starting a node")?;
        let stdout = child.stdout.take().context("node stdout")?;
        children.0.push(child);
        let line = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            std::thread::spawn(move || for _ in lines {});
            first
        })
        .await?;
        let line = match line {
            Some(Ok(l)) => l,
            _ => bail!("node {i} exited before it was listening (see its log above)"),
        };
        outln!("node {i}: {line}")?;
        rows.push(i);
    }
    outln!(
        "\n{} nodes up. Try:\n  export QUOTAD_TOKEN=$(quotad token --data-dir {} --sub ops --role operator)\n  quotad --grpc http://127.0.0.1:{} cluster status\nCtrl-C stops them all (data stays in {}).",
        rows.len(),
        first.display(),
        port(1, 0),
        a.dir.display()
    )?;
    // Ctrl-C or SIGTERM: stop the nodes before leaving.
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    drop(children);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}
