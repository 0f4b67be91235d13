//! Command line: `serve` runs a node; the other subcommands are clients.
mod bench;
mod ceiling;
mod client;
mod cluster;
mod dev_cluster;
mod secret;
mod serve;
mod table;
mod token;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "quotad",
    version,
    about = "Distributed multi-tenant quota engine"
)]
pub struct Cli {
    #[command(flatten)]
    conn: client::Conn,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node.
    Serve(Box<serve::ServeArgs>),
    /// Rebuild a node's tenants from the archive into its data dir (takes
    /// the same settings as `serve`), then exit.
    Restore {
        /// Restore from the archive's snapshots plus the usage and audit
        /// archived after them.
        #[arg(long)]
        from_archive: bool,
        #[command(flatten)]
        node: Box<serve::ServeArgs>,
    },
    /// Cluster membership and health.
    Cluster {
        #[command(subcommand)]
        cmd: cluster::ClusterCmd,
    },
    /// Load generator: Check, Increment, Batch or Envoy ShouldRateLimit
    /// against a node, a cluster or any Envoy rate limit server.
    Bench(bench::BenchArgs),
    /// The empty server `bench --ceiling` compares against (same stack, no logic).
    Ceiling(ceiling::CeilingArgs),
    /// Start a local cluster of `quotad serve` processes on 127.0.0.1.
    DevCluster(dev_cluster::DevClusterArgs),
    /// Mint a bearer token (HS256) for the control plane.
    Token(token::TokenArgs),
    /// Manage tenants (REST control plane).
    Tenant {
        #[command(subcommand)]
        cmd: client::TenantCmd,
    },
    /// Manage a tenant's quotas (REST control plane).
    Quota {
        #[command(subcommand)]
        cmd: client::QuotaCmd,
    },
    /// Ask whether an amount would be admitted (gRPC Check).
    Check {
        #[command(flatten)]
        args: client::SpendArgs,
    },
    /// Spend an amount if admitted (gRPC Increment).
    Increment {
        #[command(flatten)]
        args: client::SpendArgs,
        /// Retries with the same key count once.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Acknowledge before the write is committed.
        #[arg(long)]
        fast: bool,
    },
    /// Current usage of a tenant's quotas (gRPC GetUsage).
    Usage {
        tenant: String,
        quota: Option<String>,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let conn = cli.conn;
    match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Restore { from_archive, node } => serve::restore(from_archive, *node).await,
        Command::Cluster { cmd } => cluster::run(&conn, cmd).await,
        Command::DevCluster(args) => dev_cluster::run(args).await,
        Command::Bench(args) => bench::run(&conn, args).await,
        Command::Ceiling(args) => ceiling::run(args).await,
        Command::Token(args) => token::run(args),
        Command::Tenant { cmd } => client::tenant(&conn, cmd).await,
        Command::Quota { cmd } => client::quota(&conn, cmd).await,
        Command::Check { args } => client::check(&conn, args).await,
        Command::Increment {
            args,
            idempotency_key,
            fast,
        } => client::increment(&conn, args, idempotency_key, fast).await,
        Command::Usage { tenant, quota } => client::usage(&conn, tenant, quota).await,
    }
}
