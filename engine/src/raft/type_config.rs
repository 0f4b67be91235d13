use super::command::{Command, CommandResponse};
use std::io::Cursor;

pub use crate::model::NodeId;

openraft::declare_raft_types!(
    /// quotad's Raft types: entries carry [`Command`]s; snapshots are bytes.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
);
