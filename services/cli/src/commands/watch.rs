//! `beat watch`: prints committed batches as a replica reports them.

use std::process::ExitCode;

use super::runtime;
use crate::client;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Ordering API endpoint.
    #[arg(long, short, default_value = "http://127.0.0.1:17100")]
    endpoint: String,
    /// First epoch.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Stop after this many batches.
    #[arg(long)]
    count: Option<u64>,
    /// Print every transaction.
    #[arg(long, short)]
    transactions: bool,
}

/// Prints batches from `--from` until `--count` of them (or forever).
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(client::watch(&a.endpoint, a.from, a.count, a.transactions))?;
    Ok(ExitCode::SUCCESS)
}
