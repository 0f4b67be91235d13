//! The archive's CQL schema: its numbered migrations and the prepared
//! statements made once it is in place.
use super::errors::other;
use crate::archive::ArchiveError;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

/// Prepared statements, made once the schema is in place.
pub(super) struct Statements {
    pub put_usage: PreparedStatement,
    pub usage: PreparedStatement,
    pub put_audit: PreparedStatement,
    pub audit: PreparedStatement,
    pub put_chunk: PreparedStatement,
    pub put_header: PreparedStatement,
    pub headers: PreparedStatement,
    pub chunks: PreparedStatement,
    pub delete_header: PreparedStatement,
    pub delete_chunks: PreparedStatement,
    pub put_sync: PreparedStatement,
    pub synced_to: PreparedStatement,
    pub register_dedicated: PreparedStatement,
    pub dedicated_name: PreparedStatement,
    pub purge_usage: PreparedStatement,
    pub purge_audit: PreparedStatement,
}

/// The schema, one step per version. Step n takes the schema from version
/// n - 1 to n; steps are never edited once released, only added.
pub(super) fn migrations(ks: &str) -> Vec<(u32, Vec<String>)> {
    vec![
        (
            1,
            vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {ks}.usage_bucket (
                    tenant uuid, quota text, granularity tinyint, start_ms bigint, amount bigint,
                    PRIMARY KEY ((tenant, quota, granularity), start_ms))"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {ks}.audit_event (
                    tenant uuid, seq bigint, at_ms bigint, actor text, request_id text,
                    action text, target text, before text, after text,
                    prev_hash text, hash text,
                    PRIMARY KEY (tenant, seq))"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {ks}.shard_snapshot (
                    grp bigint, last_index bigint, last_term bigint, taken_at_ms bigint, chunks int,
                    PRIMARY KEY (grp, last_index)) WITH CLUSTERING ORDER BY (last_index DESC)"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {ks}.shard_snapshot_chunk (
                    grp bigint, last_index bigint, chunk int, data blob,
                    PRIMARY KEY ((grp, last_index), chunk))"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {ks}.sync_position (
                    grp bigint PRIMARY KEY, idx bigint)"
                ),
            ],
        ),
        (
            2,
            vec![format!(
                "CREATE TABLE IF NOT EXISTS {ks}.dedicated_schema (
                    tenant uuid PRIMARY KEY, keyspace_name text, created_at_ms bigint)"
            )],
        ),
    ]
}

impl Statements {
    /// Prepare every statement against the keyspace `ks`.
    pub(super) async fn prepare(session: &Session, ks: &str) -> Result<Statements, ArchiveError> {
        let prepare = |cql| prepare(session, cql);
        Ok(Statements {
                    put_usage: prepare(format!(
                        "INSERT INTO {ks}.usage_bucket (tenant, quota, granularity, start_ms, amount) VALUES (?, ?, ?, ?, ?) USING TTL ?"
                    )).await?,
                    usage: prepare(format!(
                        "SELECT start_ms, amount FROM {ks}.usage_bucket WHERE tenant = ? AND quota = ? AND granularity = ? AND start_ms >= ? AND start_ms < ?"
                    )).await?,
                    put_audit: prepare(format!(
                        "INSERT INTO {ks}.audit_event (tenant, seq, at_ms, actor, request_id, action, target, before, after, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    )).await?,
                    audit: prepare(format!(
                        "SELECT seq, at_ms, actor, request_id, action, target, before, after, prev_hash, hash FROM {ks}.audit_event WHERE tenant = ? AND seq > ? LIMIT ?"
                    )).await?,
                    put_chunk: prepare(format!(
                        "INSERT INTO {ks}.shard_snapshot_chunk (grp, last_index, chunk, data) VALUES (?, ?, ?, ?)"
                    )).await?,
                    put_header: prepare(format!(
                        "INSERT INTO {ks}.shard_snapshot (grp, last_index, last_term, taken_at_ms, chunks) VALUES (?, ?, ?, ?, ?)"
                    )).await?,
                    headers: prepare(format!(
                        "SELECT last_index, last_term, taken_at_ms, chunks FROM {ks}.shard_snapshot WHERE grp = ?"
                    )).await?,
                    chunks: prepare(format!(
                        "SELECT chunk, data FROM {ks}.shard_snapshot_chunk WHERE grp = ? AND last_index = ?"
                    )).await?,
                    delete_header: prepare(format!(
                        "DELETE FROM {ks}.shard_snapshot WHERE grp = ? AND last_index = ?"
                    )).await?,
                    delete_chunks: prepare(format!(
                        "DELETE FROM {ks}.shard_snapshot_chunk WHERE grp = ? AND last_index = ?"
                    )).await?,
                    put_sync: prepare(format!(
                        "INSERT INTO {ks}.sync_position (grp, idx) VALUES (?, ?) USING TIMESTAMP ?"
                    )).await?,
                    synced_to: prepare(format!(
                        "SELECT idx FROM {ks}.sync_position WHERE grp = ?"
                    )).await?,
                    register_dedicated: prepare(format!(
                        "INSERT INTO {ks}.dedicated_schema (tenant, keyspace_name, created_at_ms) VALUES (?, ?, ?)"
                    )).await?,
                    dedicated_name: prepare(format!(
                        "SELECT keyspace_name FROM {ks}.dedicated_schema WHERE tenant = ?"
                    )).await?,
                    purge_usage: prepare(format!(
                        "DELETE FROM {ks}.usage_bucket WHERE tenant = ? AND quota = ? AND granularity = ?"
                    )).await?,
                    purge_audit: prepare(format!(
                        "DELETE FROM {ks}.audit_event WHERE tenant = ?"
                    )).await?,
                })
    }
}

/// A statement prepared for retries: every write here is an upsert (of a
/// total, a numbered event, a chunk) or a delete, so a retry on another
/// replica cannot double anything.
async fn prepare(session: &Session, cql: String) -> Result<PreparedStatement, ArchiveError> {
    let mut p = session.prepare(cql).await.map_err(other)?;
    p.set_is_idempotent(true);
    Ok(p)
}
