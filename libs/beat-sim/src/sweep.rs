//! Seed sweeps: every (seed, adversary, profile) combination of a committee size, run on
//! several threads, optionally until a time budget is spent, with the per-combination
//! bookkeeping that `FLT-2` needs (a detectable deviation must be attributed at least once).

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::Duration,
};

use crate::{
    adversaries,
    invariants::Violation,
    scenario::{Profile, Scenario},
};

/// What to sweep.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// Variants and storage profiles.
    pub profiles: Vec<Profile>,
    /// Adversary names (see [`adversaries::NAMES`]).
    pub adversaries: Vec<String>,
    /// Committee size.
    pub nodes: usize,
    /// Faulty replicas (default f).
    pub faulty: Option<usize>,
    /// First seed.
    pub first_seed: u64,
    /// Last seed (inclusive); `None` runs until the budget is spent.
    pub last_seed: Option<u64>,
    /// Stop starting new runs after this long.
    pub budget: Option<Duration>,
    /// Threads.
    pub jobs: usize,
    /// Transactions per run (default 3n).
    pub transactions: Option<usize>,
    /// Batch size (default 2n).
    pub batch: Option<usize>,
}

/// One finished run.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The profile.
    pub profile: Profile,
    /// The adversary.
    pub adversary: String,
    /// The seed.
    pub seed: u64,
    /// Faulty replicas.
    pub faulty: usize,
    /// Broken invariants (or the error that stopped the run).
    pub violations: Vec<String>,
    /// Faults attributed to faulty replicas.
    pub detections: u64,
    /// Epochs every honest replica committed.
    pub epochs: u64,
    /// Deliveries.
    pub cranks: u64,
    /// The widest gap between two honest replicas' epochs.
    pub max_lag: u64,
    /// Deliveries forced by the eventual-delivery bound.
    pub forced: u64,
    /// The most messages in flight at once.
    pub peak_in_flight: usize,
    /// Honest replicas' crash-restarts.
    pub restarts: u64,
    /// Epochs honest replicas started early (pipelining), summed over the replicas.
    pub started_early: u64,
}

/// Per (adversary, profile): runs, detections and whether all passed.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Runs finished.
    pub runs: u64,
    /// Faults attributed over them.
    pub detections: u64,
    /// Epochs started early over them (pipelining), summed over the honest replicas.
    pub started_early: u64,
    /// Runs with violations.
    pub failed: u64,
}

/// The outcome of a sweep.
#[derive(Clone, Debug, Default)]
pub struct SweepReport {
    /// Per (adversary, profile).
    pub tallies: BTreeMap<(String, String), Tally>,
    /// Combinations that should have attributed a fault and did not, over at least three runs
    /// (`FLT-2`).
    pub undetected: Vec<(String, String)>,
    /// Runs finished.
    pub runs: u64,
    /// Runs with violations.
    pub failed: u64,
    /// The last seed any run started with.
    pub last_seed: u64,
}

impl SweepReport {
    /// Whether every run passed and every detectable deviation was attributed.
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.undetected.is_empty()
    }
}

impl Sweep {
    fn scenario(&self, profile: Profile, adversary: &str, seed: u64) -> Scenario {
        let mut s = Scenario::new(profile, self.nodes, adversary, seed);
        if let Some(f) = self.faulty {
            s.faulty = f;
        }
        if let Some(t) = self.transactions {
            s.transactions = t;
        }
        if let Some(b) = self.batch {
            s.batch_size = b;
        }
        s
    }

    /// Runs the sweep, calling `on_result` (on the calling thread) as runs finish.
    #[expect(
        clippy::disallowed_methods,
        reason = "the budget is wall time for the operator; it never affects a run's outcome"
    )]
    pub fn run(&self, mut on_result: impl FnMut(&RunResult)) -> SweepReport {
        let started = std::time::Instant::now();
        let out_of_time = || self.budget.is_some_and(|b| started.elapsed() >= b);
        let combos: Vec<(String, Profile)> = self
            .adversaries
            .iter()
            .flat_map(|a| self.profiles.iter().map(move |p| (a.clone(), *p)))
            .collect();
        // Work items in seed order: item k is seed first + k / |combos|, combination k % |combos|.
        let next = AtomicU64::new(0);
        let per_seed = combos.len() as u64;
        let take = || -> Option<(u64, usize)> {
            if out_of_time() || combos.is_empty() {
                return None;
            }
            let k = next.fetch_add(1, Ordering::Relaxed);
            let seed = self.first_seed.checked_add(k / per_seed)?;
            if self.last_seed.is_some_and(|last| seed > last) {
                return None;
            }
            Some((seed, (k % per_seed) as usize))
        };
        let (tx, rx) = mpsc::channel::<RunResult>();
        let mut report = SweepReport::default();
        std::thread::scope(|scope| {
            for _ in 0..self.jobs.max(1) {
                let tx = tx.clone();
                let take = &take;
                let combos = &combos;
                scope.spawn(move || {
                    while let Some((seed, i)) = take() {
                        let (adversary, profile) = &combos[i];
                        let scenario = self.scenario(*profile, adversary, seed);
                        let result = match scenario.run() {
                            Ok(r) => RunResult {
                                profile: *profile,
                                adversary: adversary.clone(),
                                seed,
                                faulty: scenario.faulty,
                                violations: r.violations.iter().map(Violation::to_string).collect(),
                                detections: r.detections,
                                epochs: r.epochs,
                                cranks: r.cranks,
                                max_lag: r.max_lag,
                                forced: r.forced,
                                peak_in_flight: r.peak_in_flight,
                                restarts: r.restarts,
                                started_early: r.started_early,
                            },
                            Err(e) => RunResult {
                                profile: *profile,
                                adversary: adversary.clone(),
                                seed,
                                faulty: scenario.faulty,
                                violations: vec![format!("the run failed: {e:#}")],
                                detections: 0,
                                epochs: 0,
                                cranks: 0,
                                max_lag: 0,
                                forced: 0,
                                peak_in_flight: 0,
                                restarts: 0,
                                started_early: 0,
                            },
                        };
                        if tx.send(result).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            for result in rx {
                on_result(&result);
                let tally = report
                    .tallies
                    .entry((result.adversary.clone(), result.profile.to_string()))
                    .or_default();
                tally.runs += 1;
                tally.detections += result.detections;
                tally.started_early += result.started_early;
                report.runs += 1;
                report.last_seed = report.last_seed.max(result.seed);
                if !result.violations.is_empty() {
                    tally.failed += 1;
                    report.failed += 1;
                }
            }
        });
        let f = self.faulty.unwrap_or((self.nodes.max(1) - 1) / 3);
        for ((adversary, profile), tally) in &report.tallies {
            let Ok(p) = profile.parse::<Profile>() else {
                continue;
            };
            let params = self.scenario(p, adversary, 0).params();
            let detectable = adversaries::by_name(adversary).is_some_and(|a| a.detectable(&params));
            // Over a handful of runs; a single run of a randomised adversary may happen to
            // deviate only undetectably.
            if detectable && f > 0 && tally.runs >= 3 && tally.detections == 0 {
                report.undetected.push((adversary.clone(), profile.clone()));
            }
        }
        report
    }
}
