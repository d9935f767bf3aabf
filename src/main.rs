//! The `briefing` command line: parse the arguments, run the command, print
//! one error if it stopped, exit with its code.

use std::process::ExitCode;

use clap::Parser;

mod cli;

// glibc returns the ~100 KB message buffers to the kernel after each
// recipient and faults them back in for the next; mimalloc keeps them, which
// doubles the per-recipient build rate (see benches/compose.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            e.print();
            ExitCode::from(e.code())
        }
    }
}
