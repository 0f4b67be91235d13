//! Standard output that a closed pipe ends quietly.
//!
//! `println!` panics when the reader has gone (`quotad quota get T | head -1`).
//! [`outln!`] returns the write error instead; `main` ends the process
//! quietly and successfully when that error is a broken pipe, like any Unix
//! tool whose reader stopped reading.

/// `println!`, returning `std::io::Result<()>`.
macro_rules! outln {
    () => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock())
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}
pub(crate) use outln;

/// Whether `e` (or its cause) is a write to a pipe nobody reads any more.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
