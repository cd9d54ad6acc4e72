//! `beat-sim`: run the adversarial simulator from the command line.
//!
//! ```text
//! beat-sim check --variant beat0 --nodes 7 --faulty 2 --adversary equivocating-proposer --seeds 1..200
//! beat-sim check --variant all --nodes 4 --adversary all --seeds 1..20
//! beat-sim check --variant beat4-commitments --nodes 7 --adversary nonzero-padding --seeds 1..50
//! beat-sim check --adversary issue59 --nodes 7 --seeds 1..500
//! beat-sim bench --variant beat0 --nodes 16 --batch 1000 --tx-size 250 --epochs 10 --json
//! beat-sim list
//! ```
//!
//! `check --variant` takes a variant (`beat0` … `beat4`, full delivery), a storage profile of
//! BEAT3/BEAT4 (`beat3-encrypted`, `beat3-commitments`, `beat4-encrypted`,
//! `beat4-commitments`), or `all` for every one of them. It exits with status 1 and names the
//! seed and invariant of every violation; rerun one seed with `--seeds S..S` to reproduce it
//! exactly.

use std::{ops::RangeInclusive, process::ExitCode, str::FromStr};

use anyhow::{Context, bail};
use beat_sim::{
    aba_attack, adversaries,
    scenario::{Bench, Profile, Scenario},
};
use beat_types::Variant;
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
        /// Adversary name, `all`, or `issue59` (see `beat-sim list`).
        #[arg(long, default_value = "benign")]
        adversary: String,
        /// Seed range, `A..B` (inclusive) or a single seed.
        #[arg(long, default_value = "1..20")]
        seeds: SeedRange,
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
        /// Variant (beat0..beat4).
        #[arg(long, default_value = "beat0")]
        variant: Variant,
        /// Committee size.
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// Batch size B.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Transaction size in bytes.
        #[arg(long, default_value_t = 250)]
        tx_size: usize,
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
struct SeedRange(RangeInclusive<u64>);

impl FromStr for SeedRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |x: &str| {
            x.trim()
                .parse::<u64>()
                .map_err(|e| format!("bad seed {x:?}: {e}"))
        };
        match s.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (parse(a)?, parse(b.trim_start_matches('='))?);
                if a > b {
                    return Err(format!("empty seed range {s}"));
                }
                Ok(Self(a..=b))
            }
            None => {
                let a = parse(s)?;
                Ok(Self(a..=a))
            }
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
            epochs,
            seed,
            json,
        } => {
            let report = Bench {
                variant,
                n: nodes,
                batch,
                tx_size,
                epochs,
                seed,
            }
            .run()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} n={} B={} tx={}B: {:.2} ms CPU, {:.0} messages, {:.0} bytes per replica per epoch ({} epochs, {} transactions)",
                    report.variant,
                    report.n,
                    report.batch,
                    report.tx_size,
                    report.cpu_ms_per_node_epoch,
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
            txs,
            batch,
            verbose,
        } => {
            let variants: Vec<Profile> = if variant == "all" {
                Profile::ALL.to_vec()
            } else {
                vec![variant.parse().context("--variant")?]
            };
            let names: Vec<String> = match adversary.as_str() {
                "all" => adversaries::NAMES.iter().map(|s| (*s).to_owned()).collect(),
                "issue59" => vec!["issue59".to_owned()],
                name if adversaries::by_name(name).is_some() => vec![name.to_owned()],
                name => bail!("unknown adversary {name:?}; see `beat-sim list`"),
            };
            let mut ok = true;
            let mut runs = 0u64;
            for name in &names {
                if name == "issue59" {
                    for mode in [
                        aba_attack::FaultyShares::Withhold,
                        aba_attack::FaultyShares::Invalid,
                    ] {
                        let mut worst = 0;
                        let mut attributed = 0;
                        for seed in seeds.0.clone() {
                            runs += 1;
                            let report = aba_attack::run(nodes, seed, 90, mode)?;
                            worst = worst.max(report.max_round);
                            attributed += report.attributed;
                            for v in &report.violations {
                                ok = false;
                                println!(
                                    "FAIL issue59 ({mode:?} shares) n={nodes} seed={seed}: {v}"
                                );
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
                            seeds.0.clone().count()
                        );
                    }
                    continue;
                }
                for v in &variants {
                    let mut detections = 0;
                    let mut scenario_ok = true;
                    for seed in seeds.0.clone() {
                        runs += 1;
                        let mut s = Scenario::new(*v, nodes, name, seed);
                        if let Some(f) = faulty {
                            s.faulty = f;
                        }
                        if let Some(t) = txs {
                            s.transactions = t;
                        }
                        if let Some(b) = batch {
                            s.batch_size = b;
                        }
                        let report = s.run()?;
                        detections += report.detections;
                        for violation in &report.violations {
                            ok = false;
                            scenario_ok = false;
                            println!(
                                "FAIL {v} n={nodes} f={} adversary={name} seed={seed}: {violation}",
                                s.faulty
                            );
                        }
                        if verbose {
                            println!(
                                "{v} n={nodes} adversary={name} seed={seed}: {} epochs, {} deliveries, {} faults attributed, {} coin shares, {} restarts",
                                report.epochs,
                                report.cranks,
                                report.detections,
                                report.random_coins,
                                report.restarts
                            );
                        }
                    }
                    let params = Scenario::new(*v, nodes, name, 0).params();
                    let detectable =
                        adversaries::by_name(name).is_some_and(|a| a.detectable(&params));
                    let f = faulty.unwrap_or((nodes.max(1) - 1) / 3);
                    if detectable && f > 0 && detections == 0 {
                        ok = false;
                        scenario_ok = false;
                        println!(
                            "FAIL {v} n={nodes} adversary={name} seeds={}..{}: FLT-2: no fault was attributed to any faulty replica",
                            seeds.0.start(),
                            seeds.0.end()
                        );
                    }
                    println!(
                        "{} {v} n={nodes} adversary={name}: {} seeds, {detections} faults attributed",
                        if scenario_ok { "ok  " } else { "FAIL" },
                        seeds.0.clone().count()
                    );
                }
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
    }
}
