//! `quotad`: runs a node (`quotad serve`) and talks to one (client
//! subcommands). Wiring only; the engine and the control plane are libraries.
// Unsafe only where a module allows it with a SAFETY comment (`memory`:
// the allocator's trim call).
#![deny(unsafe_code)]

mod cli;
mod memory;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    // One TLS crypto provider for the process (ring): rustls needs it chosen
    // when more than one could be.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader went away (`quotad … | head -1`): nothing left to say.
        Err(e) if cli::out::is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
