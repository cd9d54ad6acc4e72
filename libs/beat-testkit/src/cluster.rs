//! A local cluster of replicas as operating-system processes: what `beat devnet` runs and what
//! the end-to-end tests kill and restart.
//!
//! Every service of every replica is its own process (`<program> run <service> --config ...`),
//! as in a pod: the services talk over loopback gRPC and can crash and restart independently.
//! The cluster directory holds the committee file, each replica's keystore and passphrase, the
//! generated configuration files, the data directories and one log file per process:
//!
//! ```text
//! <dir>/committee.json
//! <dir>/replica-<i>/{keystore.bin, passphrase, <service>.toml, consensus/, state.db/,
//!                    state-client.key (BEAT2), logs/}
//! ```
//!
//! Configuration files are regenerated on every start from the [`ClusterSpec`]; keys and data
//! are kept, so restarting a devnet resumes it (crash recovery included).

use std::{
    collections::BTreeMap,
    fs::OpenOptions,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use beat_config::{CommitteeFile, Endpoints};
pub use beat_crypto::keystore_file::KdfParams;
use beat_provision::{
    keygen::{KeygenOptions, keygen},
    layout::{Ports, Service, replica_dir},
    tls,
};
use beat_types::Params;
use nix::{sys::signal::Signal, unistd::Pid};
use serde::Serialize;
use tokio::time::Instant;

/// The synthetic market feed each replica's state service runs.
#[derive(Clone, Debug)]
pub struct FeedSpec {
    /// Events per second per replica.
    pub events_per_second: u32,
    /// Symbols.
    pub symbols: Vec<String>,
}

/// Every service configuration of one replica, as the cluster is about to write them.
#[derive(Clone, Debug)]
pub struct ReplicaConfigs {
    /// The keystore's.
    pub keystore: beat_keystore::config::Config,
    /// The gateway's.
    pub gateway: beat_gateway::config::Config,
    /// The consensus service's.
    pub consensus: beat_consensus::config::Config,
    /// The state service's.
    pub state: beat_state::config::Config,
}

/// A function adjusting replica `i`'s configurations.
pub type ConfigureFn = dyn Fn(usize, &mut ReplicaConfigs) + Send + Sync;

/// Adjusts replica `i`'s configurations before they are written (transports, limits, ...).
#[derive(Clone)]
pub struct Configure(pub Arc<ConfigureFn>);

impl std::fmt::Debug for Configure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Configure(..)")
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Cluster directory (created if missing).
    pub dir: PathBuf,
    /// Number of replicas.
    pub replicas: usize,
    /// Ports are `base_port + 100·kind + replica` (see [`Ports`]).
    pub base_port: u16,
    /// Consensus parameters; must match the committee file if the directory already has one.
    pub params: Params,
    /// Which services each replica runs (the state service is optional).
    pub services: Vec<Service>,
    /// The synthetic feed, if any.
    pub feed: Option<FeedSpec>,
    /// The executable to start (`beat`, or a test binary with the same command line).
    pub program: PathBuf,
    /// Log filter of every service (`RUST_LOG` syntax).
    pub log_filter: String,
    /// Key-derivation cost of the keystore files.
    pub kdf: KdfParams,
    /// Save a consensus checkpoint every this many epochs.
    pub checkpoint_every_epochs: u64,
    /// Each replica's gateway endpoints in the committee file; `None`: TCP on loopback at the
    /// replica's peer port. Only used when the committee is generated.
    pub endpoints: Option<Vec<Endpoints>>,
    /// Applied to every replica's configurations after the cluster's defaults.
    pub configure: Option<Configure>,
    /// Market sources registered besides the cluster's own (each replica's feed, `feed-r<i>`,
    /// and `client`, whose key is `<dir>/market/client.key`): name → public key.
    pub market_sources:
        std::collections::BTreeMap<String, beat_crypto::identity::IdentityPublicKey>,
    /// Serve the public APIs over TLS with client certificates and bearer tokens
    /// ([`beat_provision::tls`]; issued into the directory when it has none), instead of plaintext on
    /// loopback.
    pub tls: bool,
}

impl ClusterSpec {
    /// The loopback ports of replica `i` under this spec's base port.
    pub fn ports(&self, i: usize) -> Ports {
        Ports {
            base: self.base_port,
            replica: i as u16,
        }
    }

    /// Why this spec's ports are at risk on this machine, if they are: they overlap the
    /// ephemeral range ([`beat_provision::layout::ephemeral_range`]), from which any outgoing
    /// connection may take a port before the service that should listen on it binds it. For the
    /// caller to show; the cluster still starts.
    pub fn port_warning(&self) -> Option<String> {
        let (lo, hi) = beat_provision::layout::ephemeral_range()?;
        let first = u32::from(self.base_port);
        let last = first + Ports::span(self.replicas.min(99) as u16) - 1;
        (first <= u32::from(hi) && u32::from(lo) <= last).then(|| {
            format!(
                "ports {first}-{last} overlap this machine's ephemeral range {lo}-{hi}: an \
                 outgoing connection may take a port before its service binds it; choose a base \
                 port of at most {}",
                u32::from(lo).saturating_sub(Ports::span(self.replicas.min(99) as u16))
            )
        })
    }

    /// A 4-replica BEAT0 cluster with every service and no feed.
    pub fn new(dir: impl Into<PathBuf>, program: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            replicas: 4,
            base_port: 17_000,
            params: Params::default(),
            services: Service::ALL.to_vec(),
            feed: None,
            program: program.into(),
            log_filter: "info,sled=warn,h2=warn,tower=warn,hyper=warn,actix_server=warn".to_owned(),
            kdf: KdfParams::default(),
            checkpoint_every_epochs: 8,
            endpoints: None,
            configure: None,
            market_sources: std::collections::BTreeMap::new(),
            tls: false,
        }
    }
}

/// A running (or stopped) local cluster. Dropping it stops every process.
pub struct Cluster {
    spec: ClusterSpec,
    dir: PathBuf,
    committee: CommitteeFile,
    children: BTreeMap<(usize, Service), Child>,
    /// Every state service's `market.sources`.
    market_sources: std::collections::BTreeMap<String, beat_crypto::identity::IdentityPublicKey>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .field("replicas", &self.spec.replicas)
            .field("running", &self.children.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a process ended unexpectedly.
#[derive(Debug)]
pub struct Exited {
    /// Replica.
    pub replica: usize,
    /// Service.
    pub service: Service,
    /// Exit status.
    pub status: ExitStatus,
    /// Its log file.
    pub log: PathBuf,
}

impl Cluster {
    /// Prepares the directory: runs the key ceremony unless a committee file exists (which must
    /// then match the spec), and writes every configuration file. Starts nothing.
    pub fn prepare(spec: ClusterSpec) -> anyhow::Result<Self> {
        if spec.replicas < 4 {
            bail!(
                "a cluster needs at least 4 replicas to tolerate a fault (got {})",
                spec.replicas
            );
        }
        if spec.replicas > 99 {
            bail!(
                "a local cluster has at most 99 replicas (got {})",
                spec.replicas
            );
        }
        let first = u32::from(spec.base_port);
        let last = first + Ports::span(spec.replicas as u16) - 1;
        if last > u32::from(u16::MAX) {
            bail!(
                "base port {} leaves no room for {} replicas",
                spec.base_port,
                spec.replicas
            );
        }
        std::fs::create_dir_all(&spec.dir)
            .with_context(|| format!("cannot create {}", spec.dir.display()))?;
        let dir = spec.dir.canonicalize()?;
        let committee_path = dir.join("committee.json");
        let committee = if committee_path.exists() {
            let existing = CommitteeFile::load(&committee_path)?;
            // Files from before committee files stated their digest gain it (clients that do
            // not hash the keys themselves read it there).
            if !std::fs::read_to_string(&committee_path)?.contains("\"digest\"") {
                existing.save(&committee_path)?;
            }
            if existing.replicas.len() != spec.replicas || existing.params != spec.params {
                bail!(
                    "{} holds a committee of {} replicas running {:?}, not the requested {} \
                     replicas running {:?}; choose another directory or start fresh (--fresh)",
                    dir.display(),
                    existing.replicas.len(),
                    existing.params.variant,
                    spec.replicas,
                    spec.params.variant,
                );
            }
            for (i, r) in existing.replicas.iter().enumerate() {
                if let Some(e) = &spec.endpoints {
                    if e.get(i) != Some(&r.endpoints) {
                        bail!(
                            "{} was created with other endpoints for replica {i}; start fresh (--fresh)",
                            dir.display()
                        );
                    }
                    continue;
                }
                let want = Self::peer_address(&spec, i).to_string();
                if r.endpoints.tcp.as_deref() != Some(want.as_str()) {
                    bail!(
                        "{} was created with other ports (replica {i} at {:?}, expected {want}); \
                         use the same --base-port or start fresh (--fresh)",
                        dir.display(),
                        r.endpoints.tcp
                    );
                }
            }
            existing
        } else {
            keygen(&KeygenOptions {
                out: dir.clone(),
                name: format!("devnet-{}", spec.replicas),
                params: spec.params.clone(),
                endpoints: match &spec.endpoints {
                    Some(e) if e.len() == spec.replicas => e.clone(),
                    Some(e) => bail!(
                        "{} endpoint entries for {} replicas",
                        e.len(),
                        spec.replicas
                    ),
                    None => (0..spec.replicas)
                        .map(|i| Endpoints {
                            tcp: Some(Self::peer_address(&spec, i).to_string()),
                            tor: None,
                            i2p: None,
                        })
                        .collect(),
                },
                passphrase_file: None,
                kdf: spec.kdf,
                tls: None,
            })?
        };
        if spec.tls && !tls::ca_file(&dir).exists() {
            tls::issue(
                &dir,
                &tls::TlsOptions {
                    server_names: vec![
                        vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
                        spec.replicas
                    ],
                    clients: vec!["client".to_owned()],
                },
            )?;
        }
        let market_sources = Self::market_registry(&dir, &spec)?;
        let cluster = Self {
            spec,
            dir,
            committee,
            children: BTreeMap::new(),
            market_sources,
        };
        for i in 0..cluster.spec.replicas {
            cluster.write_configs(i)?;
        }
        Ok(cluster)
    }

    /// The market's source registry: every replica's feed key (`replica-<i>/feed.key`), the
    /// cluster's `client` key (`market/client.key`), created on first use, and the spec's extra
    /// sources. A devnet's market is therefore never open: every event is signed.
    fn market_registry(
        dir: &Path,
        spec: &ClusterSpec,
    ) -> anyhow::Result<std::collections::BTreeMap<String, beat_crypto::identity::IdentityPublicKey>>
    {
        let mut sources = spec.market_sources.clone();
        for i in 0..spec.replicas {
            let key =
                beat_state::client_key::load_or_create(&replica_dir(dir, i).join("feed.key"))?;
            sources.insert(beat_state::feed::feed_owner(i as u32), key.public());
        }
        std::fs::create_dir_all(dir.join("market"))?;
        let client = beat_state::client_key::load_or_create(&Self::market_client_key(dir))?;
        sources.insert("client".to_owned(), client.public());
        Ok(sources)
    }

    /// The key file of the market source `client` (and `client:<anything>`) of a cluster in `dir`.
    pub fn market_client_key(dir: &Path) -> PathBuf {
        dir.join("market").join("client.key")
    }

    fn peer_address(spec: &ClusterSpec, i: usize) -> SocketAddr {
        Self::ports_of(spec, i).peer()
    }

    fn ports_of(spec: &ClusterSpec, i: usize) -> Ports {
        spec.ports(i)
    }

    /// The ports of replica `i`.
    pub fn ports(&self, i: usize) -> Ports {
        Self::ports_of(&self.spec, i)
    }

    /// The cluster directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The committee file.
    pub fn committee(&self) -> &CommitteeFile {
        &self.committee
    }

    /// The spec.
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// Number of replicas.
    pub fn n(&self) -> usize {
        self.spec.replicas
    }

    fn scheme(&self) -> &'static str {
        if self.spec.tls { "https" } else { "http" }
    }

    /// The ordering API (consensus gRPC) of replica `i`.
    pub fn ordering_endpoint(&self, i: usize) -> String {
        format!("{}://{}", self.scheme(), self.ports(i).consensus())
    }

    /// The market API (state gRPC) of replica `i`.
    pub fn market_endpoint(&self, i: usize) -> String {
        format!("{}://{}", self.scheme(), self.ports(i).state())
    }

    /// What a client of this cluster's public APIs needs: nothing on plaintext loopback, the
    /// CA and the `client` certificate and token under TLS.
    pub fn client_auth(&self) -> beat_client::connect::ClientAuth {
        if self.spec.tls {
            tls::client_auth(&self.dir, "client")
        } else {
            beat_client::connect::ClientAuth::default()
        }
    }

    /// The configuration file of one service.
    pub fn config_path(&self, i: usize, service: Service) -> PathBuf {
        replica_dir(&self.dir, i).join(format!("{}.toml", service.name()))
    }

    /// The log file of one service.
    pub fn log_path(&self, i: usize, service: Service) -> PathBuf {
        replica_dir(&self.dir, i)
            .join("logs")
            .join(format!("{}.log", service.name()))
    }

    fn write_configs(&self, i: usize) -> anyhow::Result<()> {
        let rdir = replica_dir(&self.dir, i);
        std::fs::create_dir_all(rdir.join("logs"))?;
        let ports = self.ports(i);
        let replica = i as u32;
        let committee = self.dir.join("committee.json");
        let log = beat_telemetry::logging::LogConfig {
            filter: self.spec.log_filter.clone(),
            ..Default::default()
        };
        let sockets = beat_provision::layout::Sockets::of(&self.dir, replica as usize);

        let keystore = beat_keystore::config::Config {
            replica,
            committee: committee.clone(),
            keystore_file: rdir.join("keystore.bin"),
            passphrase_file: Some(rdir.join("passphrase")),
            passphrase_env: None,
            consensus_listen: sockets.keystore_consensus.clone(),
            gateway_listen: sockets.keystore_gateway.clone(),
            ops_listen: ports.ops(Service::Keystore),
            signer_threads: 1,
            log: log.clone(),
            ..Default::default()
        };
        let mut gateway = beat_gateway::config::Config {
            replica,
            committee: committee.clone(),
            grpc_listen: sockets.gateway.clone(),
            ops_listen: ports.ops(Service::Gateway),
            log: log.clone(),
            ..Default::default()
        };
        gateway.keystore.endpoint = sockets.keystore_gateway.endpoint();
        gateway.tcp.listen = ports.peer();
        gateway.backoff.max = Duration::from_secs(2);
        let mut consensus = beat_consensus::config::Config {
            replica,
            committee: committee.clone(),
            data_dir: rdir.join("consensus"),
            grpc_listen: ports.consensus(),
            ops_listen: ports.ops(Service::Consensus),
            keystore_endpoint: sockets.keystore_consensus.endpoint(),
            gateway_endpoint: sockets.gateway.endpoint(),
            checkpoint_every_epochs: self.spec.checkpoint_every_epochs,
            max_backoff_ms: 1_000,
            log: log.clone(),
            ..Default::default()
        };
        let mut state = beat_state::config::Config {
            replica,
            committee,
            grpc_listen: ports.state(),
            ops_listen: ports.ops(Service::State),
            log,
            ..Default::default()
        };
        state.consensus.endpoint = self.ordering_endpoint(i);
        if self.spec.tls {
            for api in [&mut consensus.api, &mut state.api] {
                api.tls = Some(tls::server_tls(&self.dir, i));
                api.tokens_file = Some(tls::tokens_file(&self.dir));
            }
            state.consensus.auth = tls::state_auth(&self.dir, i);
        }
        state.consensus.backoff_max = Duration::from_secs(1);
        state.store.path = rdir.join("state.db");
        state.store.client_key = rdir.join("state-client.key");
        state.market.sources = self.market_sources.clone();
        state.feed.key_file = Some(rdir.join("feed.key"));
        if let Some(feed) = &self.spec.feed {
            state.feed.enabled = true;
            state.feed.events_per_second = feed.events_per_second;
            state.feed.symbols.clone_from(&feed.symbols);
        }

        let mut configs = ReplicaConfigs {
            keystore,
            gateway,
            consensus,
            state,
        };
        if let Some(Configure(f)) = &self.spec.configure {
            f(i, &mut configs);
        }
        write_toml(&self.config_path(i, Service::Keystore), &configs.keystore)?;
        write_toml(&self.config_path(i, Service::Gateway), &configs.gateway)?;
        write_toml(&self.config_path(i, Service::Consensus), &configs.consensus)?;
        write_toml(&self.config_path(i, Service::State), &configs.state)?;
        Ok(())
    }

    /// Starts one service of replica `i` (no-op if it is running).
    pub fn start(&mut self, i: usize, service: Service) -> anyhow::Result<()> {
        if self.is_running(i, service) {
            return Ok(());
        }
        let log_path = self.log_path(i, service);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let child = Command::new(&self.spec.program)
            .arg("run")
            .arg(service.name())
            .arg("--config")
            .arg(self.config_path(i, service))
            .current_dir(replica_dir(&self.dir, i))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.spec.program.display()))?;
        self.children.insert((i, service), child);
        Ok(())
    }

    /// Starts every configured service of replica `i`.
    pub fn start_replica(&mut self, i: usize) -> anyhow::Result<()> {
        for s in self.spec.services.clone() {
            self.start(i, s)?;
        }
        Ok(())
    }

    /// Starts every replica.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.n() {
            self.start_replica(i)?;
        }
        Ok(())
    }

    /// Whether the process of one service is alive.
    pub fn is_running(&mut self, i: usize, service: Service) -> bool {
        match self.children.get_mut(&(i, service)) {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The process id of one service, if running.
    pub fn pid(&self, i: usize, service: Service) -> Option<u32> {
        self.children.get(&(i, service)).map(Child::id)
    }

    /// Processes that ended without being stopped through the cluster (removed from it).
    pub fn reap_exited(&mut self) -> Vec<Exited> {
        let mut out = Vec::new();
        let keys: Vec<_> = self.children.keys().copied().collect();
        for key in keys {
            let status = self
                .children
                .get_mut(&key)
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = status {
                self.children.remove(&key);
                out.push(Exited {
                    replica: key.0,
                    service: key.1,
                    status,
                    log: self.log_path(key.0, key.1),
                });
            }
        }
        out
    }

    /// Kills one service with SIGKILL (a crash: nothing is flushed) and waits for it.
    pub fn kill(&mut self, i: usize, service: Service) -> anyhow::Result<()> {
        if let Some(mut child) = self.children.remove(&(i, service)) {
            let _ = child.kill();
            child.wait()?;
        }
        Ok(())
    }

    /// Stops one service with SIGTERM, waiting up to `grace` before SIGKILL.
    pub fn stop(&mut self, i: usize, service: Service, grace: Duration) -> anyhow::Result<()> {
        if let Some(child) = self.children.remove(&(i, service)) {
            stop_children(vec![child], grace);
        }
        Ok(())
    }

    /// Kills every service of replica `i` (SIGKILL).
    pub fn kill_replica(&mut self, i: usize) -> anyhow::Result<()> {
        for s in Service::ALL {
            self.kill(i, s)?;
        }
        Ok(())
    }

    /// Stops every process with SIGTERM, waiting up to `grace` in total before SIGKILL.
    pub fn stop_all(&mut self, grace: Duration) {
        let children = std::mem::take(&mut self.children).into_values().collect();
        stop_children(children, grace);
    }

    /// Waits until one service answers `/readyz` with 200.
    pub async fn wait_ready(
        &mut self,
        i: usize,
        service: Service,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let addr = self.ports(i).ops(service);
        loop {
            if beat_telemetry::probe::ready(addr).await {
                return Ok(());
            }
            if !self.is_running(i, service) {
                bail!(
                    "replica {i} {} is not running; see {}",
                    service.name(),
                    self.log_path(i, service).display()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "replica {i} {} not ready after {timeout:?}; see {}",
                    service.name(),
                    self.log_path(i, service).display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every service of replica `i` is ready.
    pub async fn wait_replica_ready(&mut self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        for s in self.spec.services.clone() {
            self.wait_ready(i, s, timeout).await?;
        }
        Ok(())
    }

    /// Waits until every service of every replica is ready.
    pub async fn wait_all_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        for i in 0..self.n() {
            self.wait_replica_ready(i, timeout).await?;
        }
        Ok(())
    }

    /// Peak resident memory (VmHWM) of every running process, in KiB (Linux only).
    pub fn peak_rss_kib(&self) -> BTreeMap<(usize, Service), u64> {
        self.children
            .iter()
            .filter_map(|(k, c)| read_vm_hwm(c.id()).map(|v| (*k, v)))
            .collect()
    }

    /// CPU time (user + system) each running service has used since it started, in seconds.
    /// Sampled before and after a load, the differences say which service spends the machine.
    #[must_use]
    pub fn cpu_seconds(&self) -> BTreeMap<(usize, Service), f64> {
        self.children
            .iter()
            .filter_map(|(k, c)| process_cpu_seconds(c.id()).map(|v| (*k, v)))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all(Duration::from_secs(5));
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "process supervision outside any runtime: waiting for children to exit is wall-clock time"
)]
fn stop_children(mut children: Vec<Child>, grace: Duration) {
    use std::time::Instant;
    for c in &children {
        if let Ok(pid) = i32::try_from(c.id()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    while !children.is_empty() {
        children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        if Instant::now() >= deadline {
            for c in &mut children {
                let _ = c.kill();
                let _ = c.wait();
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_toml(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = toml::to_string_pretty(value)?;
    let header = "# Generated by `beat devnet` on every start; edit the cluster spec instead.\n";
    std::fs::write(path, format!("{header}{text}"))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// User plus system CPU time of process `pid`, in seconds, from `/proc/<pid>/stat` (fields 14
/// and 15, in clock ticks). `None` where procfs is not there or the process is gone.
#[must_use]
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is parenthesised and may hold spaces: count after its `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)?;
    #[expect(
        clippy::cast_precision_loss,
        reason = "CPU ticks of a bench run stay far below 2^52"
    )]
    Some((utime + stime) as f64 / ticks as f64)
}

fn read_vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's own CPU time reads, and grows while it computes.
    #[test]
    #[expect(
        clippy::disallowed_methods,
        reason = "spins for a wall-clock interval to spend CPU time"
    )]
    fn cpu_seconds_are_read_and_grow() {
        let before = process_cpu_seconds(std::process::id()).expect("procfs");
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
        let after = process_cpu_seconds(std::process::id()).expect("procfs");
        assert!(after >= before + 0.05, "{before} -> {after}");
        assert_eq!(process_cpu_seconds(u32::MAX), None);
    }

    /// A spec is warned about exactly when its range reaches into the machine's ephemeral
    /// range: one port below it is fine, the range's first port is not.
    #[test]
    fn port_warning_follows_the_ephemeral_range() {
        let Some((lo, _)) = beat_provision::layout::ephemeral_range() else {
            return;
        };
        let mut spec = ClusterSpec::new("unused", "beat");
        let span = Ports::span(spec.replicas as u16);
        let Ok(below) = u16::try_from(u32::from(lo).saturating_sub(span)) else {
            return;
        };
        if u32::from(lo) < span || u32::from(lo) + span > u32::from(u16::MAX) {
            return;
        }
        spec.base_port = below;
        assert_eq!(spec.port_warning(), None);
        spec.base_port = below + 1;
        assert!(spec.port_warning().is_some());
        spec.base_port = lo;
        let warning = spec.port_warning().expect("inside the range");
        assert!(warning.contains(&format!("at most {below}")), "{warning}");
    }
}
