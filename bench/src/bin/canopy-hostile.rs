//! `canopy-hostile`: the full-size hardening load tests (see
//! `canopy_bench::hostile` and `scripts/load-harden.sh`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = canopy_bench::hostile::HostileArgs::parse();
    match canopy_bench::hostile::main_with_args(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("canopy-hostile: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
