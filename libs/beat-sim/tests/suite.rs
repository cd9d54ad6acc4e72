//! The default simulator suite: every variant × every named adversary × n ∈ {4, 7, 10, 16}
//! with f at its maximum, several seeds each; the storage profiles of BEAT3/BEAT4 (encrypted
//! contributions, commitments-only delivery) × every adversary for n ∈ {4, 7} (larger
//! committees run in `scripts/sim-long.sh`); plus the issue-59 harness.
//!
//! Failures name the profile, committee, adversary, seed and invariant; reproduce one with
//! `cargo run -p beat-sim -- check --variant V --nodes N --adversary A --seeds S..S`.
//! The long profile (thousands of runs, n up to 31) is `scripts/sim-long.sh`, run by `.ci/run`.

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

suites! {
    beat0_n4: Variant::Beat0, 4, 1..=6;
    beat1_n4: Variant::Beat1, 4, 1..=6;
    beat2_n4: Variant::Beat2, 4, 1..=6;
    beat3_n4: Variant::Beat3, 4, 1..=6;
    beat4_n4: Variant::Beat4, 4, 1..=6;
    beat0_n7: Variant::Beat0, 7, 1..=2;
    beat1_n7: Variant::Beat1, 7, 1..=2;
    beat2_n7: Variant::Beat2, 7, 1..=2;
    beat3_n7: Variant::Beat3, 7, 1..=2;
    beat4_n7: Variant::Beat4, 7, 1..=2;
    beat0_n10: Variant::Beat0, 10, 1..=1;
    beat1_n10: Variant::Beat1, 10, 1..=1;
    beat2_n10: Variant::Beat2, 10, 1..=1;
    beat3_n10: Variant::Beat3, 10, 1..=1;
    beat4_n10: Variant::Beat4, 10, 1..=1;
    beat0_n16: Variant::Beat0, 16, 1..=1;
    beat1_n16: Variant::Beat1, 16, 1..=1;
    beat2_n16: Variant::Beat2, 16, 1..=1;
    beat3_n16: Variant::Beat3, 16, 1..=1;
    beat4_n16: Variant::Beat4, 16, 1..=1;
    beat3_encrypted_n4: profile("beat3-encrypted"), 4, 1..=6;
    beat3_commitments_n4: profile("beat3-commitments"), 4, 1..=6;
    beat4_encrypted_n4: profile("beat4-encrypted"), 4, 1..=6;
    beat4_commitments_n4: profile("beat4-commitments"), 4, 1..=6;
    beat3_encrypted_n7: profile("beat3-encrypted"), 7, 1..=2;
    beat3_commitments_n7: profile("beat3-commitments"), 7, 1..=2;
    beat4_encrypted_n7: profile("beat4-encrypted"), 7, 1..=2;
    beat4_commitments_n7: profile("beat4-commitments"), 7, 1..=2;
}

fn profile(name: &str) -> Profile {
    name.parse().expect("a profile name")
}

/// The issue-59 attack on binary agreement terminates with agreement, and invalid coin shares
/// are attributed, for n = 4 and 7.
#[test]
fn issue59_attack_fails_against_conf_round() {
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
            }
        }
    }
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
