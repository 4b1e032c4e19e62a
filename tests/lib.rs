//! What the benchmarks share (`bench`): how a benchmark binary starts and
//! reads its counts. The end-to-end tests' helpers live in `e2e/`
//! (`support.rs`), which only the test binary uses.

pub mod bench {
    //! A benchmark is a `harness = false` binary: `cargo test` starts it
    //! without `--bench`, and then it only says how to run it.

    use std::{fmt::Display, ops::RangeInclusive};

    /// Runs `run` when started with `--bench`; otherwise prints how to
    /// (`how`). An error is printed with its causes and exits 1.
    pub fn main<E: Display>(name: &str, how: &str, run: impl FnOnce() -> Result<(), E>) {
        if !std::env::args().any(|arg| arg == "--bench") {
            eprintln!("{name}: a benchmark; run it as root with `{how}`");
            return;
        }
        if let Err(err) = run() {
            eprintln!("{name}: {err:#}");
            std::process::exit(1);
        }
    }

    /// The count in the environment variable `var`, within `valid`, or
    /// `default` when it is not set.
    pub fn env_count(
        var: &str,
        default: usize,
        valid: RangeInclusive<usize>,
    ) -> Result<usize, String> {
        match std::env::var(var) {
            Err(_) => Ok(default),
            Ok(text) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| valid.contains(n))
                .ok_or_else(|| {
                    format!(
                        "{var} must be an integer from {} to {}, got `{text}`",
                        valid.start(),
                        valid.end()
                    )
                }),
        }
    }
}
