//! Every loopback port range the scenarios use, in one table.
//!
//! All of them lie below Linux's ephemeral range (32768–60999 by default), so no outgoing
//! connection, of a scenario or of anything else on the machine, can take a port a service is
//! about to bind: that is what lets CI run without reserving ports. And none overlaps
//! `beat devnet`'s default range (17000–19499), so the suite runs next to a developer's devnet.
//!
//! Test binaries run one after another, but the tests of one binary run in parallel: two
//! clusters of the same binary take [`CLUSTER_A`] and [`CLUSTER_B`]; the private Tor and I2P
//! networks have their own ranges.

/// The first cluster of a test binary (`base + 100·k + i`: up to `CLUSTER_A + 2499`).
pub const CLUSTER_A: u16 = 20_000;
/// A second cluster running at the same time as the first (up to `CLUSTER_B + 2499`).
pub const CLUSTER_B: u16 = 23_000;
/// The local port the C tor client forwards the external-mode replica's onion service to.
pub const TOR_ONION_FORWARD: u16 = 26_900;
/// The private I2P network (`networks/i2pd/i2pdnet.py`: NTCP2, SAM and consoles, base + 0..96).
pub const I2PD_NET: u16 = 29_000;
/// The private Tor network (`networks/tor/tornet.py`: relays, directories, controls and the
/// client's SOCKS port, base + 0..=96).
pub const TOR_NET: u16 = 31_000;

/// Replicas a scenario cluster may have (its port span depends on it).
pub const MAX_REPLICAS: u16 = 99;

/// `(first, last)` of every range above.
pub fn ranges() -> [(&'static str, u32, u32); 5] {
    use beat_provision::layout::Ports;
    let cluster = |base: u16| {
        (
            u32::from(base),
            u32::from(base) + Ports::span(MAX_REPLICAS) - 1,
        )
    };
    let (a0, a1) = cluster(CLUSTER_A);
    let (b0, b1) = cluster(CLUSTER_B);
    [
        ("cluster A", a0, a1),
        ("cluster B", b0, b1),
        (
            "tor onion forward",
            TOR_ONION_FORWARD.into(),
            TOR_ONION_FORWARD.into(),
        ),
        ("i2pd network", I2PD_NET.into(), u32::from(I2PD_NET) + 96),
        ("tor network", TOR_NET.into(), u32::from(TOR_NET) + 96),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's default ephemeral range starts here.
    const EPHEMERAL_FIRST: u32 = 32_768;

    #[test]
    fn ranges_are_disjoint_and_below_the_ephemeral_range() {
        // `beat devnet`'s default range, which a developer may be running.
        let devnet = beat_testkit::cluster::ClusterSpec::new("unused", "beat").base_port;
        let devnet = (
            u32::from(devnet),
            u32::from(devnet) + beat_provision::layout::Ports::span(MAX_REPLICAS) - 1,
        );
        let all = ranges();
        for (i, (name, first, last)) in all.iter().enumerate() {
            assert!(first <= last, "{name}");
            assert!(
                *last < EPHEMERAL_FIRST,
                "{name} ends at {last}, in the ephemeral range"
            );
            assert!(
                *last < devnet.0 || *first > devnet.1,
                "{name} overlaps beat devnet's default ports"
            );
            for (other, f, l) in &all[i + 1..] {
                assert!(last < f || l < first, "{name} overlaps {other}");
            }
        }
    }

    /// Where the machine's ephemeral range is not the default, say so: the table holds only if
    /// it starts above every range here.
    #[test]
    fn this_machine_allocates_outgoing_ports_above_the_table() {
        let Some((lo, hi)) = beat_provision::layout::ephemeral_range() else {
            return;
        };
        for (name, first, last) in ranges() {
            assert!(
                last < u32::from(lo) || first > u32::from(hi),
                "{name} ({first}-{last}) overlaps this machine's ephemeral range {lo}-{hi} \
                 (/proc/sys/net/ipv4/ip_local_port_range)"
            );
        }
    }
}
