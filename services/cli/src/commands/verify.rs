//! `beat verify`: checks a replica's committed history (live or stored) against the committee
//! file: every batch's commit certificate, its digest and the chain.

use std::{path::PathBuf, process::ExitCode};

use super::runtime;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The committee file (the only thing trusted).
    #[arg(long, short)]
    committee: PathBuf,
    /// Ordering API endpoint of the replica to check.
    #[arg(
        long,
        short,
        default_value = "http://127.0.0.1:17100",
        conflicts_with = "data_dir"
    )]
    endpoint: String,
    /// Check a stopped consensus service's data directory instead of a live replica.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// First epoch (live only; from 0 the chain is checked from the committee's genesis).
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Stop after this many batches (default: every epoch committed when the check starts).
    #[arg(long, conflicts_with = "follow")]
    count: Option<u64>,
    /// Keep verifying new epochs as they are certified.
    #[arg(long)]
    follow: bool,
    /// Longest wait for the next certified batch.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    wait: std::time::Duration,
    /// Print every verified epoch.
    #[arg(long, short)]
    verbose: bool,
}

/// Verifies the history: success with a summary, or failure with what did not check out.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let report = match &a.data_dir {
        Some(dir) => crate::verify::stored(&a.committee, dir, a.verbose),
        None => runtime()?.block_on(crate::verify::live(
            &a.committee,
            &a.endpoint,
            a.from,
            a.count,
            a.follow,
            a.wait,
            a.verbose,
        )),
    };
    match report {
        Ok(r) => {
            println!("ok: {}", r.summary());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("verification failed: {e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}
