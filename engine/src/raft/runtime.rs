//! The runtime Raft cores and the commit path run on, apart from the one
//! that serves requests.
//!
//! A commit is several task hops (batcher, Raft core, log store, state
//! machine, the batcher's completion), and on a shared runtime each hop
//! waits behind every ready request task. Under a flood, a node refusing
//! tens of thousands of requests a second has thousands ready: in the
//! overload test, with the node held to a fifth of a core, commits passed
//! the 5 s commit timeout on a shared runtime, and 384 to 625 of about
//! 200,000 requests already admitted ended `OUTCOME_UNKNOWN` instead of
//! decided; on a runtime of their own, none did, and the node decided two
//! to three times as many. On threads of their own, the commit path
//! competes with request intake only through the OS scheduler, thread for
//! thread, however many requests wait.
//!
//! One runtime for the process (every group of every engine in it), never
//! dropped: dropping a runtime from async code panics, and its threads are
//! idle when no group runs.
use std::future::Future;
use std::sync::OnceLock;

/// Worker threads: the machine's two cores need not both be busy with
/// commits for the commit path to keep up; two keep one group's slow
/// apply from holding up another's heartbeat.
const THREADS: usize = 2;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(THREADS)
            .thread_name("quotad-raft")
            .enable_all()
            .build()
            .expect("starting the raft runtime")
    })
}

/// Run `f` on the Raft runtime: the tasks it spawns stay there.
pub(crate) async fn on_raft_runtime<F>(f: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match runtime().spawn(f).await {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Spawn `f` on the Raft runtime.
pub(crate) fn spawn<F>(f: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    runtime().spawn(f)
}
