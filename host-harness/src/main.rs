//! `callroute`: route calls through the sandboxed routing component (see [`callroute_host::cli`]).

fn main() -> std::process::ExitCode {
    callroute_host::cli::main()
}
