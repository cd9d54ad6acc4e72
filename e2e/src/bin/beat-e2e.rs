//! The `beat` command line, built inside the e2e package for its tests.

fn main() -> std::process::ExitCode {
    beat_cli::main()
}
