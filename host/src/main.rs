//! The `runnel` binary: reads the command line and calls into the library,
//! so tests drive exactly what the binary runs.

mod cli;

/// mimalloc serves every allocation of the process: Rust's, and with its
/// `override` feature librdkafka's `malloc` and `free` too. The Kafka
/// clients allocate and free small blocks per message on several threads,
/// and glibc's allocator spent about a third of the host's CPU time on them
/// at 100-byte messages (`perf record`, batch 100); with mimalloc the host
/// used 7.2 µs of CPU per message instead of 10.5. When it gives freed
/// memory back to the system is `runnel::memory`'s choice.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    runnel::memory::starting();
    cli::main()
}
