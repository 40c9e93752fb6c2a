//! `callroute`: route calls through the sandboxed routing component (see [`callroute_host::cli`]).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    callroute_host::cli::main()
}
