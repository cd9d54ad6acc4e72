//! `beat-sim`: run the adversarial simulator from the command line.
//!
//! ```text
//! beat-sim check --variant beat0 --nodes 7 --faulty 2 --adversary equivocating-proposer --seeds 1..200
//! beat-sim check --variant all --nodes 4 --adversary all --seeds 1..20
//! beat-sim check --variant beat4-commitments --nodes 7 --adversary nonzero-padding --seeds 1..50
//! beat-sim check --adversary issue59 --nodes 7 --seeds 1..500
//! beat-sim check --variant all --adversary all --nodes 7 --seeds 5000.. --budget 2h --jobs 2
//! beat-sim bench --variant beat0 --nodes 16 --batch 1000 --tx-size 250 --epochs 10 --json
//! beat-sim list
//! ```
//!
//! `check --variant` takes a variant (`beat0` … `beat4`, full delivery), a storage profile of
//! BEAT3/BEAT4 (`beat3-encrypted`, `beat3-commitments`, `beat4-encrypted`,
//! `beat4-commitments`), or `all` for every one of them. It exits with status 1 and names the
//! seed and invariant of every violation; rerun one seed with `--seeds S..S` to reproduce it
//! exactly. `--jobs` runs scenarios on several threads; `--budget` stops starting new runs
//! after a wall-clock duration (with an open seed range `A..`, a developer's long profile).

use std::{ops::RangeInclusive, process::ExitCode, str::FromStr};

use anyhow::{Context, bail};
use beat_sim::{
    aba_attack, adversaries,
    scenario::{Bench, Profile},
    sweep::Sweep,
};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "beat-sim",
    version,
    about = "Seeded adversarial simulator for the BEAT protocols"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios over a range of seeds and check every invariant.
    Check {
        /// Variant (beat0..beat4), storage profile (beat3-encrypted, beat3-commitments,
        /// beat4-encrypted, beat4-commitments) or `all`.
        #[arg(long, default_value = "beat0")]
        variant: String,
        /// Committee size.
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// Faulty replicas (default: f = ⌊(n−1)/3⌋).
        #[arg(long)]
        faulty: Option<usize>,
        /// Adversary name, a comma-separated list of names, `all`, or `issue59` (see
        /// `beat-sim list`).
        #[arg(long, default_value = "benign")]
        adversary: String,
        /// Seed range, `A..B` (inclusive), `A..` (open: needs `--budget`) or a single seed.
        #[arg(long, default_value = "1..20")]
        seeds: SeedRange,
        /// Stop starting new runs after this long (e.g. `10m`, `2h`).
        #[arg(long, value_parser = humantime::parse_duration)]
        budget: Option<std::time::Duration>,
        /// Scenarios run at once, on threads.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Transactions per run (default 3n).
        #[arg(long)]
        txs: Option<usize>,
        /// Batch size B (default 2n).
        #[arg(long)]
        batch: Option<usize>,
        /// Print one line per run.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Measure CPU, messages and bytes per replica and epoch with real cryptography.
    Bench {
        /// Variant (beat0..beat4) or storage profile (beat3-encrypted, beat3-commitments,
        /// beat4-encrypted, beat4-commitments).
        #[arg(long, default_value = "beat0")]
        variant: Profile,
        /// Committee size.
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// Batch size B.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Transaction size in bytes.
        #[arg(long, default_value_t = 250)]
        tx_size: usize,
        /// BEAT2: transactions per client envelope (1 = each sealed alone, up to 64 = one
        /// bundle). B still counts envelopes.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        bundle: u16,
        /// Epochs to run.
        #[arg(long, default_value_t = 10)]
        epochs: u64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the adversaries.
    List,
}

#[derive(Clone, Debug)]
struct SeedRange {
    first: u64,
    /// `None`: open (until the budget is spent).
    last: Option<u64>,
}

impl FromStr for SeedRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |x: &str| {
            x.trim()
                .parse::<u64>()
                .map_err(|e| format!("bad seed {x:?}: {e}"))
        };
        match s.split_once("..") {
            Some((a, "")) => Ok(Self {
                first: parse(a)?,
                last: None,
            }),
            Some((a, b)) => {
                let (a, b) = (parse(a)?, parse(b.trim_start_matches('='))?);
                if a > b {
                    return Err(format!("empty seed range {s}"));
                }
                Ok(Self {
                    first: a,
                    last: Some(b),
                })
            }
            None => {
                let a = parse(s)?;
                Ok(Self {
                    first: a,
                    last: Some(a),
                })
            }
        }
    }
}

impl SeedRange {
    fn bounded(&self) -> anyhow::Result<RangeInclusive<u64>> {
        match self.last {
            Some(last) => Ok(self.first..=last),
            None => bail!("an open seed range ({}..) needs --budget", self.first),
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    match Cli::parse().command {
        Command::List => {
            for name in adversaries::NAMES {
                println!("{name}");
            }
            println!("issue59");
            Ok(true)
        }
        Command::Bench {
            variant,
            nodes,
            batch,
            tx_size,
            bundle,
            epochs,
            seed,
            json,
        } => {
            let report = Bench {
                profile: variant,
                n: nodes,
                batch,
                tx_size,
                bundle: bundle.into(),
                epochs,
                seed,
            }
            .run()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} n={} B={} tx={}B bundle={}: {:.2} ms CPU ({:.1} µs per transaction), {:.0} messages, {:.0} bytes per replica per epoch ({} epochs, {} transactions)",
                    report.variant,
                    report.n,
                    report.batch,
                    report.tx_size,
                    report.bundle,
                    report.cpu_ms_per_node_epoch,
                    report.cpu_us_per_transaction,
                    report.msgs_per_node_epoch,
                    report.bytes_per_node_epoch,
                    report.epochs,
                    report.txs_committed
                );
            }
            Ok(true)
        }
        Command::Check {
            variant,
            nodes,
            faulty,
            adversary,
            seeds,
            budget,
            jobs,
            txs,
            batch,
            verbose,
        } => {
            if seeds.last.is_none() && budget.is_none() {
                seeds.bounded()?;
            }
            let profiles: Vec<Profile> = if variant == "all" {
                Profile::ALL.to_vec()
            } else {
                vec![variant.parse().context("--variant")?]
            };
            let names: Vec<String> = match adversary.as_str() {
                "all" => adversaries::NAMES.iter().map(|s| (*s).to_owned()).collect(),
                "issue59" => return issue59(nodes, seeds.bounded()?, verbose),
                list => list
                    .split(',')
                    .map(|name| match adversaries::by_name(name) {
                        Some(_) => Ok(name.to_owned()),
                        None => bail!("unknown adversary {name:?}; see `beat-sim list`"),
                    })
                    .collect::<anyhow::Result<_>>()?,
            };
            let sweep = Sweep {
                profiles,
                adversaries: names,
                nodes,
                faulty,
                first_seed: seeds.first,
                last_seed: seeds.last,
                budget,
                jobs,
                transactions: txs,
                batch,
            };
            let report = sweep.run(|r| {
                for violation in &r.violations {
                    println!(
                        "FAIL {} n={nodes} f={} adversary={} seed={}: {violation}",
                        r.profile, r.faulty, r.adversary, r.seed
                    );
                }
                if verbose {
                    println!(
                        "{} n={nodes} adversary={} seed={}: {} epochs, {} deliveries ({} forced, at most {} in flight), {} restarts, {} epochs started early, {} faults attributed, widest lag {} epochs",
                        r.profile,
                        r.adversary,
                        r.seed,
                        r.epochs,
                        r.cranks,
                        r.forced,
                        r.peak_in_flight,
                        r.restarts,
                        r.started_early,
                        r.detections,
                        r.max_lag
                    );
                }
            });
            for ((name, profile), tally) in &report.tallies {
                let undetected = report
                    .undetected
                    .iter()
                    .any(|(a, p)| a == name && p == profile);
                if undetected {
                    println!(
                        "FAIL {profile} n={nodes} adversary={name}: FLT-2: no fault was attributed to any faulty replica in {} runs",
                        tally.runs
                    );
                }
                println!(
                    "{} {profile} n={nodes} adversary={name}: {} seeds, {} faults attributed, {} epochs started early",
                    if tally.failed == 0 && !undetected {
                        "ok  "
                    } else {
                        "FAIL"
                    },
                    tally.runs,
                    tally.detections,
                    tally.started_early
                );
            }
            println!(
                "{} runs (seeds {}..={}), {}",
                report.runs,
                seeds.first,
                report.last_seed,
                if report.ok() {
                    "no violations"
                } else {
                    "VIOLATIONS FOUND"
                }
            );
            Ok(report.ok())
        }
    }
}

/// The issue-59 harness over `seeds`, with withheld and with invalid faulty coin shares.
fn issue59(nodes: usize, seeds: RangeInclusive<u64>, verbose: bool) -> anyhow::Result<bool> {
    let mut ok = true;
    let mut runs = 0u64;
    for mode in [
        aba_attack::FaultyShares::Withhold,
        aba_attack::FaultyShares::Invalid,
    ] {
        let mut worst = 0;
        let mut attributed = 0;
        for seed in seeds.clone() {
            runs += 1;
            let report = aba_attack::run(nodes, seed, 90, mode)?;
            worst = worst.max(report.max_round);
            attributed += report.attributed;
            for v in &report.violations {
                ok = false;
                println!("FAIL issue59 ({mode:?} shares) n={nodes} seed={seed}: {v}");
            }
            if verbose {
                println!(
                    "issue59 ({mode:?} shares) n={nodes} seed={seed}: decided by round {}, {} faults attributed",
                    report.max_round, report.attributed
                );
            }
        }
        println!(
            "issue59 ({mode:?} shares) n={nodes}: {} seeds, highest round reached {worst}, {attributed} faults attributed",
            seeds.clone().count()
        );
    }
    println!(
        "{runs} runs, {}",
        if ok {
            "no violations"
        } else {
            "VIOLATIONS FOUND"
        }
    );
    Ok(ok)
}
