//! Mutation fuzzing, on the stable toolchain, of every decoder a remote party reaches.
//!
//! No nightly compiler (for `cargo fuzz`) is available to this project, so this is a
//! structure-blind mutation loop rather than a coverage-guided fuzzer: each [`Target`] starts
//! from seeds that are *valid* inputs made by the real encoders (consensus messages recorded
//! from simulator runs of every variant, handshakes, sealed records, segment files, keystore
//! files, ciphertexts, market events), stacks random edits on them ([`mutate`]), and keeps the
//! mutants the target still accepts as further seeds, so runs drift into valid-but-unusual
//! structure. Each target checks properties, not only "no panic": a decoded message re-encodes
//! to itself, a forged record never opens, a mutated segment file never yields a record that
//! was not written, a keystore file that opens holds what was sealed.
//!
//! `beat-fuzz run --target <name> --seconds <s>` runs one target (`all` for every one in turn);
//! a panic saves the input under `regressions/<target>/` and fails the run. The crate's test
//! replays every saved input and every seed, in CI.

pub mod mutate;
pub mod targets;

/// One fuzz target.
pub trait Target {
    /// Its name on the command line and under `regressions/`.
    fn name(&self) -> &'static str;

    /// Valid inputs to start from.
    fn seeds(&mut self) -> Vec<Vec<u8>>;

    /// Runs one input; panics if a property fails. Returns whether the input was accepted
    /// (decoded, opened), which makes it a seed for further mutation.
    fn run(&mut self, input: &[u8]) -> bool;

    /// The longest input worth trying.
    fn max_len(&self) -> usize {
        1 << 16
    }
}

/// Every target, by name.
pub fn all() -> Vec<Box<dyn Target>> {
    targets::all()
}
