//! The `briefing` command line: parse the arguments, run the command, print
//! one error if it stopped, exit with its code.

use std::process::ExitCode;

use clap::Parser;

mod cli;

// The system allocator, not mimalloc (used until issue 16): since each
// message is built in one buffer of its final size, glibc no longer hands
// message buffers back to the kernel, and a send costs the same CPU with
// either, while mimalloc's per-thread pages held a 20k send at 66-75 MB
// peak against 23 MB.

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
