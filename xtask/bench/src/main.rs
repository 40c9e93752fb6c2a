//! `callroute-bench`: the benchmark and the load test, in a release build. Run through `cargo
//! xtask bench` and `cargo xtask load`, which build it with `--release` first.
//!
//! - `callroute-bench bench [--calls N] [--concurrency C] [--callroute PATH] [--remember-secs N]
//!   [--at-least R] [--only sandbox --seconds N]`: the side-by-side benchmark (see [`bench`]);
//! - `callroute-bench load [--calls N] [--concurrency C] [--callroute PATH]`: the load test (see
//!   [`load`]).

mod bench;
mod load;
mod process;

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let args: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("bench") => bench::run(args),
        Some("load") => load::run(args),
        _ => {
            eprintln!(
                "usage: callroute-bench bench|load [--calls N] [--concurrency C] [--callroute PATH]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {}: {e}", task.unwrap_or_default());
            ExitCode::FAILURE
        }
    }
}
