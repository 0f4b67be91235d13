/// When a change is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Consistency {
    /// After the Raft entry holding it is committed and applied.
    #[default]
    Strict,
    /// At once; it is committed with the next group-commit batch.
    Fast,
}
