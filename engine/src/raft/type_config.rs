use super::command::{Command, CommandResponse};
use std::io::Cursor;

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// quotad's Raft types: entries carry [`Command`]s; snapshots are bytes.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
);
