//! `beat submit`: transactions to a replica's ordering API.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;

use super::runtime;
use crate::client;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Ordering API endpoints, tried in turn: a submission that fails transiently (a replica
    /// down or overloaded) goes to the next one. Repeatable.
    #[arg(long, short, default_value = "http://127.0.0.1:17100")]
    endpoint: Vec<String>,
    /// The committee file (required for BEAT2, whose clients encrypt).
    #[arg(long)]
    committee: Option<PathBuf>,
    /// Read transactions from a file, one per line.
    #[arg(long)]
    file: Option<PathBuf>,
    /// BEAT2: seal up to this many transactions as one bundle — one ciphertext, signature and
    /// receipt for all of them, committed together in order. Each replica spends about as much
    /// on a bundle as on one transaction.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    bundle: u16,
    /// Transactions (UTF-8 text).
    transactions: Vec<String>,
}

/// Submits the transactions given (arguments, then the file's lines).
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut txs: Vec<Vec<u8>> = a.transactions.into_iter().map(String::into_bytes).collect();
    if let Some(f) = &a.file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        txs.extend(
            text.lines()
                .filter(|l| !l.is_empty())
                .map(|l| l.as_bytes().to_vec()),
        );
    }
    anyhow::ensure!(!txs.is_empty(), "no transactions given");
    runtime()?.block_on(client::submit(
        a.endpoint,
        a.committee.as_deref(),
        txs,
        a.bundle.into(),
    ))?;
    Ok(ExitCode::SUCCESS)
}
