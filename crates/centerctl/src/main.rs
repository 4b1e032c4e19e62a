//! The centerctl binary: parse the command line, run it, map the outcome to
//! an exit code (0 ok, 1 failure, 2 usage; clap exits 2 by itself).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = centerctl::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("centerctl: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(centerctl::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A closed stdout (`centerctl bus tail | head`) is not a failure.
            if err.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("centerctl: {err:#}");
            ExitCode::FAILURE
        }
    }
}
