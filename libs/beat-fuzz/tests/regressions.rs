//! Every target: its seeds are accepted (so the harness is sound), every input saved under
//! `regressions/` runs without a panic, and a short deterministic burst of mutations finds
//! nothing. CI also runs `beat-fuzz run` with a random seed (scripts/test).

use beat_fuzz::mutate::mutate;
use rand::RngExt as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[test]
fn seeds_regressions_and_a_burst_of_mutations() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    for mut t in beat_fuzz::all() {
        let name = t.name();
        let seeds = t.seeds();
        assert!(!seeds.is_empty(), "{name}: no seeds");
        for (i, seed) in seeds.iter().enumerate() {
            // The handshake responder never accepts anything: its seeds check the refusal.
            assert!(
                t.run(seed) || name == "handshake-responder",
                "{name}: seed {i} is refused"
            );
        }
        if let Ok(entries) = std::fs::read_dir(root.join(name)) {
            for entry in entries.flatten() {
                let input = std::fs::read(entry.path()).unwrap();
                t.run(&input);
            }
        }
        let mut rng = ChaCha20Rng::seed_from_u64(0x5eed);
        for _ in 0..300 {
            let base = &seeds[rng.random_range(0..seeds.len())];
            let other = &seeds[rng.random_range(0..seeds.len())];
            let input = mutate(base, other, t.max_len(), &mut rng);
            t.run(&input);
        }
    }
}
