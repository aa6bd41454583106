//! The `runnel` binary: reads the command line and calls into the library,
//! so tests drive exactly what the binary runs.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
