//! The quick simulator suite, run by `cargo test` (debug build): every profile (BEAT0–BEAT4,
//! and BEAT3/BEAT4 with encrypted contributions and with commitments-only delivery) × every
//! named adversary at n = 4, the full-delivery variants at n = 7 and BEAT0/BEAT1 at n = 10,
//! f at its maximum; the issue-59 harness; and one named regression test per bug, each on the
//! seed that showed it.
//!
//! The CI profile of ≥ 10⁴ runs (n up to 31, seeds derived from the commit) is
//! `scripts/sim-long.sh`, run by `.ci/run` in release. Failures name the profile, committee,
//! adversary, seed and invariant; reproduce one with
//! `cargo run --release -p beat-sim -- check --variant V --nodes N --adversary A --seeds S..S`.

use beat_sim::{
    aba_attack, adversaries,
    scenario::{Profile, Scenario},
};
use beat_types::Variant;

/// Runs every adversary for one profile and committee size over `seeds`; panics listing every
/// violation.
fn suite(variant: impl Into<Profile>, n: usize, seeds: std::ops::RangeInclusive<u64>) {
    let variant = variant.into();
    let mut failures = Vec::new();
    let mut runs = 0;
    for name in adversaries::NAMES {
        let mut detections = 0;
        for seed in seeds.clone() {
            let scenario = Scenario::new(variant, n, name, seed);
            let report = scenario.run().expect("scenario runs");
            runs += 1;
            detections += report.detections;
            for v in report.violations {
                failures.push(format!("{variant} n={n} adversary={name} seed={seed}: {v}"));
            }
        }
        let params = Scenario::new(variant, n, name, 0).params();
        let detectable = adversaries::by_name(name).is_some_and(|a| a.detectable(&params));
        if detectable && n >= 4 && detections == 0 {
            failures.push(format!(
                "{variant} n={n} adversary={name} seeds {seeds:?}: FLT-2: no fault attributed to a faulty replica"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{runs} runs, {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

macro_rules! suites {
    ($($name:ident: $variant:expr, $n:expr, $seeds:expr;)*) => {
        $(
            #[test]
            fn $name() {
                suite($variant, $n, $seeds);
            }
        )*
    };
}

/// Pipelined epochs (ADR 0010) under the adversaries that attack what pipelining changes —
/// restarts with the next epoch under way, lost links, laggards, withheld coin and decryption
/// shares, floods of future-epoch messages, partitions — with four times the default workload,
/// so that three of the four replicas (the simulator's pipelining ones) start epochs early
/// many times per run. Every invariant holds, and pipelining does happen.
#[test]
fn pipelined_epochs_hold_every_invariant_under_attack() {
    let mut failures = Vec::new();
    for variant in [Variant::Beat0, Variant::Beat2] {
        for name in [
            "crash-restart",
            "link-reset",
            "lagging",
            "lagging-past-window",
            "selective-coin-shares",
            "selective-decryption-shares",
            "future-epoch-flood",
            "partition",
            "chaos",
        ] {
            let seed = 7;
            let mut scenario = Scenario::new(variant, 4, name, seed);
            scenario.transactions *= 4;
            let report = scenario.run().expect("scenario runs");
            for v in &report.violations {
                failures.push(format!("{variant} adversary={name} seed={seed}: {v}"));
            }
            if report.started_early < 4 {
                failures.push(format!(
                    "{variant} adversary={name} seed={seed}: only {} epochs started early in {} epochs",
                    report.started_early, report.epochs
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

suites! {
    beat0_n4: Variant::Beat0, 4, 1..=2;
    beat1_n4: Variant::Beat1, 4, 1..=2;
    beat2_n4: Variant::Beat2, 4, 1..=2;
    beat3_n4: Variant::Beat3, 4, 1..=2;
    beat4_n4: Variant::Beat4, 4, 1..=2;
    beat3_encrypted_n4: profile("beat3-encrypted"), 4, 1..=2;
    beat3_commitments_n4: profile("beat3-commitments"), 4, 1..=2;
    beat4_encrypted_n4: profile("beat4-encrypted"), 4, 1..=2;
    beat4_commitments_n4: profile("beat4-commitments"), 4, 1..=2;
    beat0_n7: Variant::Beat0, 7, 1..=1;
    beat1_n7: Variant::Beat1, 7, 1..=1;
    beat2_n7: Variant::Beat2, 7, 1..=1;
    beat3_n7: Variant::Beat3, 7, 1..=1;
    beat4_n7: Variant::Beat4, 7, 1..=1;
    beat0_n10: Variant::Beat0, 10, 1..=1;
    beat1_n10: Variant::Beat1, 10, 1..=1;
}

/// Runs one scenario and asserts it passes; returns its report.
fn passes(
    profile: impl Into<Profile>,
    n: usize,
    adversary: &str,
    seed: u64,
) -> beat_sim::scenario::Report {
    let profile = profile.into();
    let report = Scenario::new(profile, n, adversary, seed)
        .run()
        .expect("scenario runs");
    assert!(
        report.violations.is_empty(),
        "{profile} n={n} adversary={adversary} seed={seed}: {:?}",
        report.violations
    );
    report
}

/// Regression (issue 12, bug 1, R2): a replica that combined f+1 coin shares — a faulty
/// replica's valid share, sent to it alone, among them — before its own share came back from
/// the keystore dropped its own; replicas not sent the faulty share never reached f+1. Each of
/// these stalled (LIV-1) with the share dropped.
#[test]
fn late_own_coin_shares_are_released() {
    passes(Variant::Beat3, 4, "selective-coin-shares", 9);
    passes(Variant::Beat1, 4, "replay", 777_018);
    passes(Variant::Beat1, 4, "chaos", 4);
}

/// Regression (issue 12, bug 1, R2): the same with decryption shares: a replica that decrypted
/// from the faulty replica's share (sent to some only) and one honest share left the epoch and
/// dropped its own shares; the replica left out waited for ever.
#[test]
fn late_own_decryption_shares_are_released() {
    passes(Variant::Beat0, 4, "selective-decryption-shares", 2);
    passes(Variant::Beat0, 7, "selective-decryption-shares", 2);
}

/// Regression (issue 12, bug 2, R1): replicas that decided (or moved to the next round) dropped
/// the round's messages and stopped relaying BVAL; a replica that needed the other value in
/// `bin_values` to count n−f AUX votes stalled, and with it every honest replica.
#[test]
fn rounds_left_and_decided_keep_relaying() {
    passes(Variant::Beat1, 4, "relay-starvation", 1);
    passes(Variant::Beat1, 7, "relay-starvation", 2);
    passes(Variant::Beat1, 4, "aba-equivocation", 777_000);
    passes(Variant::Beat1, 4, "aba-equivocation", 777_119);
}

/// Regression (issue 12, bug 4, N5'): a replica that lost messages with a link reset, one or
/// two epochs behind an idle cluster, never reached the `catch_up_lag` needed to ask for
/// catch-up (LIV-1 with "node 3: 32 uncommitted"); the stall report now asks at once.
#[test]
fn a_lagging_replica_catches_up_in_an_idle_cluster() {
    passes(Variant::Beat0, 4, "link-reset", 5);
    passes(Variant::Beat1, 4, "link-reset", 16);
    passes(Variant::Beat0, 7, "link-reset", 3);
}

fn profile(name: &str) -> Profile {
    name.parse().expect("a profile name")
}

/// The issue-59 attack on binary agreement terminates with agreement, and invalid coin shares
/// are attributed, for n = 4 and 7 — and the attacker stays strong enough to drag agreements
/// into later rounds (it knows the fixed coins and keeps the honest replicas split), so the
/// random rounds after the first one are exercised too.
#[test]
fn issue59_attack_fails_against_conf_round() {
    let mut highest = 0;
    for n in [4, 7] {
        for seed in 1..=20 {
            for mode in [
                aba_attack::FaultyShares::Withhold,
                aba_attack::FaultyShares::Invalid,
            ] {
                let report = aba_attack::run(n, seed, 90, mode).expect("harness runs");
                assert!(
                    report.violations.is_empty(),
                    "n={n} seed={seed} {mode:?}: {:?}",
                    report.violations
                );
                highest = highest.max(report.max_round);
            }
        }
    }
    assert!(highest >= 4, "the attack reached only round {highest}");
}

/// Regression (issue 12, bug 5): a faulty proposer stored a codeword with non-zero padding in
/// group 1; a partial read of group 0 returned its bytes while a full read refused with
/// `NonZeroPadding` (RD-1, and RET-1 since the full read failed). This seed showed both
/// before the padding stopped being part of the value; now every reader gets the
/// contribution.
#[test]
fn partial_and_full_reads_agree_on_nonzero_padding() {
    let report = Scenario::new(profile("beat4-commitments"), 4, "nonzero-padding", 1)
        .run()
        .expect("scenario runs");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert!(report.epochs > 0);
}

/// Regression (found by the long profile): a restarted replica re-sends its decryption shares;
/// a receiver still agreeing stashed both copies, overflowed the per-sender cap and reported the
/// honest replica as faulty (FLT-1). BEAT2 at n = 4, crash-restart, seed 20 reproduced it.
#[test]
fn resent_early_decryption_shares_are_not_a_fault() {
    let report = Scenario::new(Variant::Beat2, 4, "crash-restart", 20)
        .run()
        .expect("scenario runs");
    assert!(report.restarts > 0, "the scenario must restart a replica");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

/// Regression: BEAT2 labels were unauthenticated and are the duplicate-suppression key, so a
/// faulty proposer could order junk ciphertexts under an honest client's next labels and spend
/// them; the real requests were then suppressed everywhere. With the old labels, BEAT2 at n = 4,
/// label-squatting, seed 1 left 2 transactions uncommitted at every honest replica (LIV-1).
/// Now the squatter's ciphertexts fail the client-signature check at E3 and are blamed on it.
#[test]
fn squatted_client_labels_are_not_spent() {
    for (n, seed) in [(4, 1), (7, 10)] {
        let report = Scenario::new(Variant::Beat2, n, "label-squatting", seed)
            .run()
            .expect("scenario runs");
        assert!(
            report.violations.is_empty(),
            "n={n} seed={seed}: {:?}",
            report.violations
        );
        assert!(
            report.detections > 0,
            "n={n} seed={seed}: the squatter must be blamed"
        );
    }
}

/// Regression (found by the 10⁵-run sweep of 2026-12-03): with commitments-only delivery, a
/// replica that adopted an epoch through catch-up stored none of the fragments it had verified
/// for that epoch's dispersals, so a dispersal could end up with fewer than `k` honest
/// fragments and not decode (RET-1: "1 fragments verified, 2 needed"). The composite adversary's
/// stall timers made slightly-late replicas catch up on these seeds.
#[test]
fn catch_up_keeps_the_fragments_a_replica_verified() {
    passes(profile("beat3-commitments"), 4, "chaos", 411_103_691);
    passes(profile("beat4-commitments"), 4, "chaos", 411_103_732);
}

/// Regression (the CI profile at n = 16, 2026-12-03): the composite adversary crashed an honest
/// replica every ~490 deliveries, faster than an epoch completes at n = 16, and every recovery
/// re-sent everything since the replica's last checkpoint — which, nothing having committed,
/// was everything: 8,226 restarts, 6 million messages in flight, nothing committed after 4
/// million deliveries (LIV-1). A replica now crashes again only after it has moved past the
/// epoch it recovered into (the crash-recovery model in `VirtualNet::adversary_acts`).
#[test]
fn crashes_do_not_outpace_epochs() {
    let report = passes(Variant::Beat0, 16, "chaos", 316_832_001);
    assert!(report.restarts > 0, "the seed must still crash replicas");
    assert!(
        report.restarts <= 16 * (report.epochs + report.max_lag + 1),
        "{} restarts in {} epochs",
        report.restarts,
        report.epochs
    );
}
