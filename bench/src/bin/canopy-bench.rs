//! Stand-alone `canopy-bench`, the same as `canopy bench`.

fn main() -> std::process::ExitCode {
    canopy_bench::main_with_args(std::env::args().skip(1))
}
