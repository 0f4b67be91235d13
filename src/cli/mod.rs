//! Command line: `serve` runs a node; the other subcommands are clients.
mod bench;
mod ceiling;
mod certs;
mod client;
mod cluster;
mod dev_cluster;
mod listen;
mod logs;
mod malformed;
pub(crate) mod out;
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
    #[command(
        flatten,
        next_help_heading = "Client options (client subcommands only)"
    )]
    conn: client::Conn,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node.
    #[command(after_help = SERVE_ENV_HELP)]
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
        #[command(flatten)]
        conn: client::ConnFlags,
    },
    /// Load generator: Check, Increment, Batch or Envoy ShouldRateLimit
    /// against a node, a cluster or any Envoy rate limit server.
    Bench {
        #[command(flatten)]
        args: bench::BenchArgs,
        #[command(flatten)]
        conn: client::ConnFlags,
    },
    /// The empty server `bench --ceiling` compares against (same stack, no logic).
    Ceiling(ceiling::CeilingArgs),
    /// Start a local cluster of `quotad serve` processes on 127.0.0.1.
    DevCluster(dev_cluster::DevClusterArgs),
    /// Mint a bearer token (HS256) for the control plane.
    Token(token::TokenArgs),
    /// Development certificates for TLS (`certs dev`).
    #[command(subcommand)]
    Certs(certs::CertsCmd),
    /// Manage tenants (REST control plane).
    Tenant {
        #[command(subcommand)]
        cmd: client::TenantCmd,
        #[command(flatten)]
        conn: client::ConnFlags,
    },
    /// Manage a tenant's quotas (REST control plane).
    Quota {
        #[command(subcommand)]
        cmd: client::QuotaCmd,
        #[command(flatten)]
        conn: client::ConnFlags,
    },
    /// Ask whether an amount would be admitted (gRPC Check).
    Check {
        #[command(flatten)]
        args: client::SpendArgs,
        #[command(flatten)]
        conn: client::ConnFlags,
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
        #[command(flatten)]
        conn: client::ConnFlags,
    },
    /// Current usage of a tenant's quotas (gRPC GetUsage).
    Usage {
        tenant: String,
        quota: Option<String>,
        #[command(flatten)]
        conn: client::ConnFlags,
    },
}

/// What `serve --help` says of the settings that are not flags.
const SERVE_ENV_HELP: &str = "\
Environment (no flags, so secrets stay out of the process list):
  JWT_SECRET       HS256 secret (at least 16 bytes) that control-plane tokens are
                   signed with. When unset, the node generates one into
                   DATA_DIR/jwt-secret (mode 0600) on first start; mint tokens for
                   it with `quotad token --data-dir DATA_DIR`.
  JWT_EXPIRATION   default lifetime of tokens minted by `quotad token` (e.g. 24h).
  RUST_LOG         log filter (e.g. info, quotad_engine=debug).";

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let base = cli.conn;
    match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Restore { from_archive, node } => serve::restore(from_archive, *node).await,
        Command::Cluster { cmd, conn } => cluster::run(&base.with(conn), cmd).await,
        Command::DevCluster(args) => dev_cluster::run(args).await,
        Command::Bench { args, conn } => bench::run(&base.with(conn), args).await,
        Command::Ceiling(args) => ceiling::run(args).await,
        Command::Token(args) => token::run(args),
        Command::Certs(cmd) => certs::run(cmd),
        Command::Tenant { cmd, conn } => client::tenant(&base.with(conn), cmd).await,
        Command::Quota { cmd, conn } => client::quota(&base.with(conn), cmd).await,
        Command::Check { args, conn } => client::check(&base.with(conn), args).await,
        Command::Increment {
            args,
            idempotency_key,
            fast,
            conn,
        } => client::increment(&base.with(conn), args, idempotency_key, fast).await,
        Command::Usage {
            tenant,
            quota,
            conn,
        } => client::usage(&base.with(conn), tenant, quota).await,
    }
}
