//! `beat`: see the crate documentation of `beat_cli`.

fn main() -> std::process::ExitCode {
    beat_cli::main()
}
