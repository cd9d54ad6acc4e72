//! Cutting network paths on loopback as a censor would: `iptables` rules that DROP every TCP
//! packet to or from a port range on `lo`, in this network namespace or in another one (the
//! private I2P network's routers live in their own). Nothing is reset, so a connection in use
//! stalls exactly as behind a blackholing middlebox and is found dead only by its own timeouts;
//! new connections time out.
//!
//! Rules carry a comment naming this process, and [`Cut`] removes its rules when dropped (pass
//! or fail). Needs root and the `iptables` binary (and `nsenter` for another namespace);
//! [`Cut::available`] says whether they work.

use std::process::Command;

use anyhow::Context as _;

/// The `iptables` binary (`/usr/sbin` is not on every user's `PATH`), run in the network
/// namespace of process `netns` when given.
fn iptables(netns: Option<u32>) -> Command {
    let path = ["/usr/sbin/iptables", "/sbin/iptables"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .unwrap_or("iptables");
    let mut c = match netns {
        None => Command::new(path),
        Some(pid) => {
            let mut c = Command::new("nsenter");
            c.args(["-t", &pid.to_string(), "-n", "--", path]);
            c
        }
    };
    c.arg("-w");
    c
}

/// A set of DROP rules, removed on drop.
#[derive(Debug)]
pub struct Cut {
    label: String,
    netns: Option<u32>,
    rules: Vec<Vec<String>>,
}

impl Cut {
    /// Whether rules can be added here (root, `iptables` present and working); the reason when
    /// not.
    pub fn available() -> Result<(), String> {
        match iptables(None).args(["-n", "-L", "OUTPUT"]).output() {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "iptables -L OUTPUT failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!("cannot run iptables: {e}")),
        }
    }

    /// Drops every TCP packet on `lo` to or from the ports `from..=to`.
    pub fn ports(label: &str, from: u16, to: u16) -> anyhow::Result<Self> {
        Self::ports_in(label, None, from, to)
    }

    /// Drops every TCP packet on `lo` to or from the ports `from..=to` in the network namespace
    /// of process `netns` (this one's when `None`).
    pub fn ports_in(label: &str, netns: Option<u32>, from: u16, to: u16) -> anyhow::Result<Self> {
        let tag = format!("beat-e2e-{}-{label}", std::process::id());
        let range = format!("{from}:{to}");
        let mut cut = Self {
            label: label.to_owned(),
            netns,
            rules: Vec::new(),
        };
        for direction in ["--dport", "--sport"] {
            let rule: Vec<String> = [
                "OUTPUT",
                "-o",
                "lo",
                "-p",
                "tcp",
                direction,
                &range,
                "-m",
                "comment",
                "--comment",
                &tag,
                "-j",
                "DROP",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            let out = iptables(netns)
                .arg("-I")
                .args(&rule)
                .output()
                .context("cannot run iptables")?;
            anyhow::ensure!(
                out.status.success(),
                "iptables -I {} failed: {}",
                rule.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            cut.rules.push(rule);
        }
        let place = netns.map_or_else(String::new, |pid| format!(" in the namespace of {pid}"));
        eprintln!("cut {label}: dropping tcp {range} on lo{place}");
        Ok(cut)
    }

    /// Removes the rules now (also done on drop).
    pub fn restore(mut self) {
        self.remove();
    }

    fn remove(&mut self) {
        if self.rules.is_empty() {
            return;
        }
        eprintln!("restoring {}", self.label);
        for rule in self.rules.drain(..) {
            match iptables(self.netns).arg("-D").args(&rule).output() {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "cannot remove iptables rule {}: {}",
                    rule.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => eprintln!("cannot run iptables: {e}"),
            }
        }
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        self.remove();
    }
}
