//! `beat-fuzz`: runs the mutation fuzz targets (see the crate docs).

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use beat_fuzz::{Target, mutate::mutate};
use clap::{Parser, Subcommand};
use rand::RngExt as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest as _, Sha256};

#[derive(Parser)]
#[command(about = "Mutation fuzzing of BEAT's remote-facing decoders")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the targets.
    List,
    /// Fuzzes one target, or `all` in turn, for a time each.
    Run {
        /// Target name, or `all`.
        #[arg(long, default_value = "all")]
        target: String,
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Mutation seed (random if not given; printed either way).
        #[arg(long)]
        seed: Option<u64>,
        /// Where a crashing input is saved (under `<dir>/<target>/`).
        #[arg(long, default_value = "libs/beat-fuzz/regressions")]
        regressions: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::List => {
            for t in beat_fuzz::all() {
                println!("{}", t.name());
            }
            ExitCode::SUCCESS
        }
        Command::Run {
            target,
            seconds,
            seed,
            regressions,
        } => {
            let seed = seed.unwrap_or_else(rand::random);
            let mut any = false;
            for mut t in beat_fuzz::all() {
                if target != "all" && target != t.name() {
                    continue;
                }
                any = true;
                if !fuzz(t.as_mut(), Duration::from_secs(seconds), seed, &regressions) {
                    return ExitCode::FAILURE;
                }
            }
            if !any {
                eprintln!("no target called {target:?} (see `beat-fuzz list`)");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
    }
}

/// Fuzzes `t` for `time`; returns `false` after saving a crashing input. Wall-clock time only
/// bounds the run and times slow inputs; what runs is fixed by the seed.
#[allow(clippy::disallowed_methods)]
fn fuzz(t: &mut dyn Target, time: Duration, seed: u64, regressions: &std::path::Path) -> bool {
    let name = t.name();
    let seeds = t.seeds();
    assert!(!seeds.is_empty(), "{name} has no seeds");
    let mut pool = seeds.clone();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (mut execs, mut accepted) = (0u64, 0u64);
    let mut slowest = Duration::ZERO;
    let max_len = t.max_len();
    let started = Instant::now();
    while started.elapsed() < time {
        let base = &pool[rng.random_range(0..pool.len())];
        let other = &pool[rng.random_range(0..pool.len())];
        let input = mutate(base, other, max_len, &mut rng);
        let t0 = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| t.run(&input)));
        slowest = slowest.max(t0.elapsed());
        execs += 1;
        match outcome {
            Ok(true) => {
                accepted += 1;
                if pool.len() < 4096 {
                    pool.push(input);
                } else {
                    let i = rng.random_range(seeds.len()..pool.len());
                    pool[i] = input;
                }
            }
            Ok(false) => {}
            Err(_) => {
                let dir = regressions.join(name);
                let _ = std::fs::create_dir_all(&dir);
                let hash: String = Sha256::digest(&input)[..8]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let file = dir.join(format!("{hash}.bin"));
                let _ = std::fs::write(&file, &input);
                eprintln!(
                    "{name}: CRASH after {execs} execs (seed {seed}); input saved to {} ({} bytes): {}",
                    file.display(),
                    input.len(),
                    input.iter().map(|b| format!("{b:02x}")).collect::<String>()
                );
                return false;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name}: {execs} execs in {secs:.0} s ({:.0}/s), {accepted} accepted, {} seeds, pool {}, slowest {:?}, seed {seed}, no crash",
        execs as f64 / secs,
        seeds.len(),
        pool.len(),
        slowest,
    );
    true
}
