//! The private Tor and I2P networks of the transport scenarios, driven from the tests: a network
//! of Debian `tor` daemons (`networks/tor/tornet.py`) and one of Debian `i2pd` routers in a
//! network namespace (`networks/i2pd/i2pdnet.py`). Both come up bounded in time (the scripts'
//! `--timeout`, coreutils `timeout` around the script, and `--lifetime` on every daemon, so
//! nothing outlives a killed test by long) and go down by process id when dropped, pass or fail.
//!
//! Also here: creating a replica's onion-service identity and I2P destination before the key
//! ceremony, so the committee file carries them (`beat tor-address`, `beat i2p-address`).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::Context as _;

/// The directories that hold `tor` and `i2pd` on Debian, besides `PATH` (`/usr/sbin` is not on
/// every user's `PATH`).
const SBIN_DIRS: [&str; 2] = ["/usr/sbin", "/usr/bin"];

/// `PATH` with the Debian daemon directories appended.
fn search_path() -> String {
    let mut path = std::env::var("PATH").unwrap_or_default();
    for d in SBIN_DIRS {
        path.push(':');
        path.push_str(d);
    }
    path
}

fn installed(binaries: &[&str]) -> bool {
    std::env::split_paths(&search_path()).any(|d| binaries.iter().all(|b| d.join(b).is_file()))
}

/// Whether `tor` and `tor-gencert` (Debian package `tor`) are here.
pub fn tor_installed() -> bool {
    installed(&["tor", "tor-gencert"])
}

/// Whether `i2pd` (Debian package `i2pd`) is here.
pub fn i2pd_installed() -> bool {
    installed(&["i2pd"])
}

/// Whether this process may create the private network namespace the i2pd routers live in;
/// `Err` says why not. Probed in a throw-away `python3` child exactly as i2pdnet.py does it:
/// `unshare(CLONE_NEWNET)` (root), else `unshare(CLONE_NEWUSER | CLONE_NEWNET)` (unprivileged
/// user namespaces).
pub fn netns_available() -> Result<(), String> {
    const PROBE: &str = "import ctypes, sys\n\
        libc = ctypes.CDLL(None, use_errno=True)\n\
        ok = libc.unshare(0x40000000) == 0 or libc.unshare(0x50000000) == 0\n\
        sys.exit(0 if ok else 1)\n";
    match Command::new("python3").args(["-c", PROBE]).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(_) => Err(
            "cannot create a network namespace for the i2pd routers: run as root or \
                      enable unprivileged user namespaces"
                .into(),
        ),
        Err(e) => Err(format!("cannot run python3: {e}")),
    }
}

/// Whether a private i2pd network can run here: `i2pd` installed and a network namespace
/// available; `Err` says what is missing.
pub fn i2pd_network_possible() -> Result<(), String> {
    if !i2pd_installed() {
        return Err(
            "no `i2pd` binary in PATH, /usr/sbin or /usr/bin (Debian package `i2pd`; \
                    .ci/run installs it)"
                .into(),
        );
    }
    netns_available()
}

fn script(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Runs a network script's `down`, reporting (not failing on) errors: used from `Drop`.
fn down(script: &Path, dir: &Path) {
    let result = Command::new("timeout")
        .args(["-k", "5", "60", "python3"])
        .arg(script)
        .args(["down", "--grace", "5", "--dir"])
        .arg(dir)
        .env("PATH", search_path())
        .output();
    let name = script.file_name().unwrap_or_default().to_string_lossy();
    match result {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!(
            "{name} down failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => eprintln!("cannot run {name} down: {e}"),
    }
}

/// A running private Tor network (3 directory authorities, 5 relays on 127.0.0.1); dropping it
/// stops every tor process it started, by PID.
pub struct TorNet {
    dir: PathBuf,
    base_port: u16,
    /// The arti configuration that points at this network's authorities.
    pub arti_toml: PathBuf,
    /// The network's C tor client, when it was started with one ([`TorNet::up_with_client`]).
    pub client: Option<TorClient>,
}

/// A C tor client on the private network, as an operator's own tor daemon would be: a SOCKS5
/// port and onion services forwarded to local ports (`HiddenServicePort`).
#[derive(Clone, Debug)]
pub struct TorClient {
    /// Its SOCKS5 port, `127.0.0.1:port`.
    pub socks: String,
    /// One `<address>.onion:<virtual port>` per requested onion service, in request order.
    pub onions: Vec<String>,
}

impl TorNet {
    /// The ports a network with `base_port` uses: OR ports from `base`, directory ports from
    /// `base + 32` (tornet.py's layout), all below `base + 64`.
    pub const PORT_SPAN: u16 = 64;

    /// Generates and starts the network in `dir` with its ports from `base_port`; returns once
    /// it has a usable consensus (at most ~4 minutes).
    pub fn up(dir: &Path, base_port: u16) -> anyhow::Result<Self> {
        Self::start(dir, base_port, None)
    }

    /// Like [`TorNet::up`], plus the network's C tor client with one onion service per
    /// `(virtual port, local port)`, forwarded to `127.0.0.1:<local port>`: what a replica in
    /// the gateway's external (`tor.socks5`) mode runs beside it.
    pub fn up_with_client(
        dir: &Path,
        base_port: u16,
        onions: &[(u16, u16)],
    ) -> anyhow::Result<Self> {
        Self::start(dir, base_port, Some(onions))
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "timing an external network's start-up for the report: wall-clock time"
    )]
    fn start(dir: &Path, base_port: u16, client: Option<&[(u16, u16)]>) -> anyhow::Result<Self> {
        let started = std::time::Instant::now();
        let mut command = Command::new("timeout");
        command
            .args(["-k", "10", "240", "python3"])
            .arg(script("networks/tor/tornet.py"))
            .args(["up", "--fresh", "--timeout", "180"])
            .args(["--lifetime", "1800", "--base-port"])
            .arg(base_port.to_string())
            .arg("--dir")
            .arg(dir);
        match client {
            None => {
                command.arg("--no-client");
            }
            Some(onions) => {
                for (virtual_port, local_port) in onions {
                    command.arg(format!("--c-onion={virtual_port}=127.0.0.1:{local_port}"));
                }
            }
        }
        let out = command
            .env("PATH", search_path())
            .output()
            .context("cannot run e2e/networks/tor/tornet.py (python3 and coreutils timeout)")?;
        // From here on the network may be partly up: let Drop take it down whatever happens.
        let mut net = Self {
            dir: dir.to_owned(),
            base_port,
            arti_toml: dir.join("arti.toml"),
            client: None,
        };
        anyhow::ensure!(
            out.status.success(),
            "tornet.py up failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        anyhow::ensure!(
            net.arti_toml.is_file(),
            "tornet.py wrote no {}",
            net.arti_toml.display()
        );
        if client.is_some() {
            net.client = Some(read_client(&dir.join("network.json"))?);
        }
        eprintln!(
            "private Tor network up in {:.1} s: {}; C tor client {:?}",
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stdout).trim(),
            net.client
        );
        Ok(net)
    }

    /// Every relay and authority port, `(first, last)`: what a censor blocking Tor cuts.
    pub fn ports(&self) -> (u16, u16) {
        (self.base_port, self.base_port + Self::PORT_SPAN - 1)
    }
}

/// The C tor client's SOCKS port and onion addresses from tornet.py's `network.json`.
fn read_client(network_json: &Path) -> anyhow::Result<TorClient> {
    let text = std::fs::read_to_string(network_json)
        .with_context(|| format!("cannot read {}", network_json.display()))?;
    let net: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", network_json.display()))?;
    let client = &net["client"];
    let socks = client["socks"]
        .as_str()
        .context("network.json: no client.socks (was the C tor client started?)")?
        .to_owned();
    let mut onions = Vec::new();
    for service in client["onion_services"].as_array().into_iter().flatten() {
        let onion = service["onion"]
            .as_str()
            .context("network.json: an onion service without an address")?;
        let port = service["virtport"]
            .as_u64()
            .context("network.json: an onion service without a virtual port")?;
        onions.push(format!("{onion}:{port}"));
    }
    Ok(TorClient { socks, onions })
}

impl Drop for TorNet {
    fn drop(&mut self) {
        down(&script("networks/tor/tornet.py"), &self.dir);
    }
}

/// A running private I2P network of i2pd routers in a network namespace, SAM bridges forwarded
/// to 127.0.0.1; dropping it stops every process it started, by PID.
pub struct I2pdNet {
    dir: PathBuf,
    base_port: u16,
    /// The SAM bridges, `host:port`, one per SAM router.
    pub sam: Vec<String>,
    /// The process that owns the routers' network namespace (for `nsenter -t`).
    pub netns_pid: u32,
}

impl I2pdNet {
    /// Router `i`'s NTCP2 port (inside the namespace) is `base + i`, for `i < 32`.
    pub const ROUTER_PORT_SPAN: u16 = 32;

    /// Starts 8 routers with `sam` SAM bridges and ports from `base_port`; returns once every
    /// bridge has a session and streams between them echo (at most ~5 minutes).
    #[expect(
        clippy::disallowed_methods,
        reason = "timing an external network's start-up for the report: wall-clock time"
    )]
    pub fn up(dir: &Path, base_port: u16, sam: usize) -> anyhow::Result<Self> {
        let started = std::time::Instant::now();
        let out = Command::new("timeout")
            .args(["-k", "10", "300", "python3"])
            .arg(script("networks/i2pd/i2pdnet.py"))
            .args(["up", "--sam"])
            .arg(sam.to_string())
            .args(["--timeout", "240", "--lifetime", "1800", "--base-port"])
            .arg(base_port.to_string())
            .arg("--dir")
            .arg(dir)
            .env("PATH", search_path())
            .output()
            .context("cannot run e2e/networks/i2pd/i2pdnet.py (python3 and coreutils timeout)")?;
        let mut net = Self {
            dir: dir.to_owned(),
            base_port,
            sam: Vec::new(),
            netns_pid: 0,
        };
        anyhow::ensure!(
            out.status.success(),
            "i2pdnet.py up failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join("network.json")).context("i2pdnet.py wrote no network.json")?,
        )?;
        for bridge in json["sam"]
            .as_array()
            .context("network.json has no sam list")?
        {
            let host = bridge["host"].as_str().context("sam host")?;
            let port = bridge["port"].as_u64().context("sam port")?;
            net.sam.push(format!("{host}:{port}"));
        }
        net.netns_pid = json["isolation"]["netns_pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .context("network.json has no isolation.netns_pid")?;
        anyhow::ensure!(net.sam.len() >= sam, "only {} SAM bridges", net.sam.len());
        eprintln!(
            "private I2P network (i2pd) up in {:.1} s; SAM bridges {:?}",
            started.elapsed().as_secs_f64(),
            net.sam
        );
        Ok(net)
    }

    /// The routers' NTCP2 ports inside the namespace, `(first, last)`: what a censor blocking
    /// I2P cuts (router to router; the SAM bridges on 127.0.0.1 stay reachable, as they would
    /// on a replica's own machine).
    pub fn router_ports(&self) -> (u16, u16) {
        (self.base_port, self.base_port + Self::ROUTER_PORT_SPAN - 1)
    }
}

impl Drop for I2pdNet {
    fn drop(&mut self) {
        down(&script("networks/i2pd/i2pdnet.py"), &self.dir);
    }
}

/// Creates replica `i`'s onion-service identity under `tor_dir` (`state/`, `cache/`) with
/// `beat tor-address` and returns the endpoint it prints (`<address>.onion:7000`).
pub fn tor_address(beat: &Path, tor_dir: &Path, arti_toml: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(tor_dir)?;
    let out = Command::new(beat)
        .arg("tor-address")
        .arg("--state-dir")
        .arg(tor_dir.join("state"))
        .arg("--cache-dir")
        .arg(tor_dir.join("cache"))
        .arg("--arti-config")
        .arg(arti_toml)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "beat tor-address failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let endpoint = String::from_utf8(out.stdout)?.trim().to_owned();
    anyhow::ensure!(
        endpoint.ends_with(".onion:7000"),
        "unexpected endpoint {endpoint:?}"
    );
    Ok(endpoint)
}

/// Creates (or reads) the I2P destination in `key` through the SAM bridge `sam` with
/// `beat i2p-address` and returns it, retrying once a second for `tries` seconds while a young
/// network cannot answer yet.
pub async fn i2p_address(beat: &Path, key: &Path, sam: &str, tries: u32) -> anyhow::Result<String> {
    let mut last = String::new();
    for _ in 0..tries {
        let out = Command::new(beat)
            .arg("i2p-address")
            .arg("--sam")
            .arg(sam)
            .arg("--key-file")
            .arg(key)
            .output()?;
        if out.status.success() {
            return Ok(String::from_utf8(out.stdout)?.trim().to_owned());
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!("beat i2p-address against {sam} kept failing: {last}")
}
