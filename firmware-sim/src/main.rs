//! The `ferrokey` program: see [`firmware_sim::cli`] (`ferrokey --help`).

fn main() -> std::process::ExitCode {
    firmware_sim::cli::main()
}
