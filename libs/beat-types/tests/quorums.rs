//! Quorum arithmetic: a data-driven fixture plus the defining properties for every n in 1..=100.

use beat_types::Committee;

/// Checks `testdata/quorums.txt`, whose rows were computed by hand from the definitions.
#[test]
fn fixture_rows_match() {
    let text = include_str!("../testdata/quorums.txt");
    let mut rows = 0;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let v: Vec<usize> = line
            .split_whitespace()
            .map(|x| x.parse().expect("fixture field is a number"))
            .collect();
        let [n, f, f1, f2, nf, n2f, echo] = v[..] else {
            panic!("fixture row has 7 fields: {line}");
        };
        let c = Committee::new(n).unwrap();
        assert_eq!(
            (
                c.f(),
                c.f_plus_one(),
                c.two_f_plus_one(),
                c.quorum(),
                c.data_shards(),
                c.echo_threshold()
            ),
            (f, f1, f2, nf, n2f, echo),
            "n = {n}"
        );
        rows += 1;
    }
    assert_eq!(rows, 15);
}

/// The properties each threshold exists for, for every committee size from 1 to 100.
#[test]
fn thresholds_have_their_defining_properties_for_n_1_to_100() {
    for n in 1..=100 {
        let c = Committee::new(n).unwrap();
        let f = c.f();
        // f is the largest value with n ≥ 3f + 1.
        assert!(n > 3 * f, "n = {n}");
        assert!(n < 3 * (f + 1) + 1, "n = {n}: f is maximal");
        // f+1 always contains an honest replica.
        assert!(c.f_plus_one() > f);
        // 2f+1 contains f+1 honest replicas, and is reachable without faulty replicas.
        assert!(c.two_f_plus_one() - f > f);
        assert!(c.two_f_plus_one() <= c.quorum());
        // Two quorums of n−f intersect in at least f+1 replicas (one honest).
        assert!(2 * c.quorum() > n + f, "n = {n}: overlap ≥ f+1");
        // The quorum is reachable with f replicas silent.
        assert_eq!(c.quorum() + f, n);
        // k = n−2f data shards: the honest replicas among n−f senders suffice to decode.
        assert_eq!(c.data_shards() + c.parity_shards(), n);
        assert!(c.data_shards() >= 1);
        assert!(c.quorum() - f >= c.data_shards());
        // Two Bracha ECHO quorums intersect in an honest replica, and the ECHO quorum is
        // reachable from honest replicas alone.
        assert!(2 * c.echo_threshold() > n + f, "n = {n}: overlap ≥ f+1");
        assert!(c.echo_threshold() <= c.quorum(), "n = {n}");
        // With n = 3f+1 the classical thresholds coincide.
        if n == 3 * f + 1 {
            assert_eq!(c.two_f_plus_one(), c.quorum());
            assert_eq!(c.echo_threshold(), c.quorum());
            assert_eq!(c.data_shards(), f + 1);
        }
    }
}
