//! The command line.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use beat_config::{CommitteeFile, Endpoints};
use beat_core::{Delivery, Params};
use beat_crypto::keystore_file::KdfParams;
use beat_types::Variant;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    bench::{LoadOptions, LocalBench, run_load, run_local},
    client,
    cluster::{ClusterSpec, FeedSpec},
    devnet::{DevnetOptions, default_dir, devnet},
    health,
    keygen::{KeygenOptions, keygen},
    layout::{Ports, Service},
    run::run_service,
};

/// BEAT: asynchronous BFT ordering (BEAT0–BEAT4) as gRPC services.
#[derive(Parser, Debug)]
#[command(name = "beat", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    auth: ClientAuthArgs,
}

/// Credentials for the public APIs (`https://` endpoints, tokens), for every client command.
#[derive(Args, Debug, Default)]
struct ClientAuthArgs {
    /// The CA that issued the replicas' API certificates (PEM; `https://` endpoints).
    #[arg(long, global = true, env = "BEAT_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// A client certificate for mutual TLS (PEM), with --key-file.
    #[arg(long, global = true, env = "BEAT_CERT_FILE", requires = "key_file")]
    cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "BEAT_KEY_FILE", requires = "cert_file")]
    key_file: Option<PathBuf>,
    /// A file holding the bearer token to send.
    #[arg(long, global = true, env = "BEAT_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The name the servers' certificates carry, if not the endpoint's host.
    #[arg(long, global = true)]
    tls_domain: Option<String>,
}

impl ClientAuthArgs {
    fn auth(&self) -> beat_client::connect::ClientAuth {
        beat_client::connect::ClientAuth {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            token_file: self.token_file.clone(),
            tls_domain: self.tls_domain.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a local cluster (keys, configs and processes) that orders a market-data feed.
    Devnet(DevnetArgs),
    /// Run one service of a replica in the foreground.
    Run(RunArgs),
    /// Exit 0 if one service of this replica is ready (its ops `/readyz`); a container check.
    Health(HealthArgs),
    /// Generate a committee's keys (trusted dealer) and each replica's encrypted keystore.
    Keygen(KeygenArgs),
    /// Print this replica's onion endpoint for the committee file, creating the onion-service
    /// identity in the gateway's Tor state directory if needed (no network is used).
    TorAddress(TorAddressArgs),
    /// Print this replica's I2P destination for the committee file, having the SAM bridge
    /// generate it (SIGNATURE_TYPE=7) into the gateway's key file if there is none yet.
    I2pAddress(I2pAddressArgs),
    /// Submit transactions to a replica's ordering API.
    Submit(SubmitArgs),
    /// Print committed batches as a replica reports them.
    Watch(WatchArgs),
    /// Check a replica's committed history against the committee file: every batch's commit
    /// certificate, its digest and the chain (a live replica, or a stopped one's data directory).
    Verify(VerifyArgs),
    /// Print the status of replicas.
    Status(StatusArgs),
    /// Query a replica's market state.
    #[command(subcommand)]
    Market(MarketCommand),
    /// Measure throughput, latency and memory under an open-loop load.
    Bench(BenchArgs),
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum ServiceArg {
    Gateway,
    Keystore,
    Consensus,
    State,
}

impl From<ServiceArg> for Service {
    fn from(s: ServiceArg) -> Self {
        match s {
            ServiceArg::Gateway => Self::Gateway,
            ServiceArg::Keystore => Self::Keystore,
            ServiceArg::Consensus => Self::Consensus,
            ServiceArg::State => Self::State,
        }
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The service.
    #[arg(env = "BEAT_SERVICE")]
    service: ServiceArg,
    /// Configuration file (TOML); keys can be overridden with BEAT_<SERVICE>__<KEY>.
    #[arg(long, short, env = "BEAT_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct HealthArgs {
    /// The service (as for `beat run`).
    #[arg(env = "BEAT_SERVICE")]
    service: Option<ServiceArg>,
    /// The service's configuration file (as for `beat run`); its `ops_listen` is asked.
    #[arg(long, short, env = "BEAT_CONFIG")]
    config: Option<PathBuf>,
    /// Ask this ops address instead of reading a configuration.
    #[arg(long, conflicts_with_all = ["service", "config"])]
    ops: Option<std::net::SocketAddr>,
    /// Give up after this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    timeout: Duration,
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
enum DeliveryArg {
    Full,
    CommitmentsOnly,
}

/// Consensus parameters written into a new committee file.
#[derive(Args, Debug, Clone)]
struct ParamsArgs {
    /// Protocol variant: beat0 … beat4.
    #[arg(long, default_value = "beat0")]
    variant: Variant,
    /// Target transactions per epoch (B); each replica proposes ⌈B/n⌉.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// BEAT3/BEAT4: deliver full batches or commitments only.
    #[arg(long, value_enum, default_value = "full")]
    delivery: DeliveryArg,
    /// BEAT3/BEAT4: threshold-encrypt contributions before dispersal.
    #[arg(long)]
    encrypt_storage: bool,
}

impl ParamsArgs {
    fn params(&self) -> Params {
        Params {
            variant: self.variant,
            batch_size: self.batch_size,
            delivery: match self.delivery {
                DeliveryArg::Full => Delivery::Full,
                DeliveryArg::CommitmentsOnly => Delivery::CommitmentsOnly,
            },
            encrypt_storage: self.encrypt_storage,
            ..Params::default()
        }
    }
}

#[derive(Args, Debug)]
struct DevnetArgs {
    /// Cluster directory (keys, configs, data, logs); reused across runs.
    #[arg(long, default_value_os_t = default_dir())]
    dir: PathBuf,
    /// Number of replicas (tolerates ⌊(n−1)/3⌋ Byzantine).
    #[arg(long, short = 'n', visible_alias = "nodes", default_value_t = 4)]
    replicas: usize,
    #[command(flatten)]
    params: ParamsArgs,
    /// First port; replica i's ports are base + 100·k + i.
    #[arg(long, default_value_t = 17_000)]
    base_port: u16,
    /// Synthetic market events per second per replica (0: no feed).
    #[arg(long, default_value_t = 200)]
    feed_rate: u32,
    /// Symbols of the synthetic feed.
    #[arg(long, value_delimiter = ',', default_value = "BTC-USD,ETH-USD,SOL-USD")]
    symbols: Vec<String>,
    /// Run the ordering services only (no state service, no feed).
    #[arg(long)]
    no_state: bool,
    /// Stop after this long (e.g. 60s); exit code 1 unless progress was made safely.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Delete the directory first.
    #[arg(long)]
    fresh: bool,
    /// Serve the public APIs over TLS with client certificates and bearer tokens (issued into
    /// <dir>/tls/), as a production committee would.
    #[arg(long)]
    tls: bool,
    /// Status line interval.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    interval: Duration,
    /// Log filter of the services (their logs go to <dir>/replica-<i>/logs/).
    #[arg(
        long,
        default_value = "info,sled=warn,h2=warn,tower=warn,hyper=warn,actix_server=warn"
    )]
    log_filter: String,
}

#[derive(Args, Debug)]
struct KeygenArgs {
    /// Output directory.
    #[arg(long, short)]
    out: PathBuf,
    /// Committee name.
    #[arg(long, default_value = "beat")]
    name: String,
    /// One replica's gateway endpoints, in replica order: `tcp=host:port[,tor=x.onion:port][,i2p=dest]`.
    #[arg(long = "replica", required = true)]
    replicas: Vec<String>,
    #[command(flatten)]
    params: ParamsArgs,
    /// Use this passphrase file for every replica instead of generating one per replica.
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
    /// Also issue the public APIs' TLS material: a CA, a certificate per replica, and a
    /// certificate and bearer token per client (tls/, replica-<i>/tls/).
    #[arg(long)]
    tls: bool,
    /// A name in every replica's API certificate (DNS name or IP address; `{i}` is the replica
    /// index). Repeatable.
    #[arg(long = "tls-name", requires = "tls", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
    tls_names: Vec<String>,
    /// A client to issue a certificate and token for. Repeatable.
    #[arg(long = "tls-client", requires = "tls", default_values_t = ["client".to_owned()])]
    tls_clients: Vec<String>,
}

#[derive(Args, Debug)]
struct TorAddressArgs {
    /// The gateway's configuration file: its `[tor]` section says where the keys are.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override `tor.state_dir` (where the onion-service identity key is kept).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Override `tor.cache_dir`.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Override `tor.arti_config` (an extra arti TOML file, e.g. a private network's).
    #[arg(long)]
    arti_config: Option<PathBuf>,
    /// Override `tor.nickname`.
    #[arg(long)]
    nickname: Option<String>,
    /// Override `tor.onion_port`.
    #[arg(long)]
    onion_port: Option<u16>,
}

#[derive(Args, Debug)]
struct I2pAddressArgs {
    /// The gateway's configuration file: its `[i2p]` section names the bridge and key file.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override `i2p.sam` (the SAM bridge, host:port).
    #[arg(long)]
    sam: Option<String>,
    /// Override `i2p.key_file`.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Print the `.b32.i2p` name instead of the full base64 destination.
    #[arg(long)]
    b32: bool,
}

#[derive(Args, Debug)]
struct SubmitArgs {
    /// Ordering API endpoints, tried in turn: a submission that fails transiently (a replica
    /// down or overloaded) goes to the next one. Repeatable.
    #[arg(long, short, default_value = "http://127.0.0.1:17100")]
    endpoint: Vec<String>,
    /// The committee file (required for BEAT2, whose clients encrypt).
    #[arg(long)]
    committee: Option<PathBuf>,
    /// Read transactions from a file, one per line.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Transactions (UTF-8 text).
    transactions: Vec<String>,
}

#[derive(Args, Debug)]
struct WatchArgs {
    /// Ordering API endpoint.
    #[arg(long, short, default_value = "http://127.0.0.1:17100")]
    endpoint: String,
    /// First epoch.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Stop after this many batches.
    #[arg(long)]
    count: Option<u64>,
    /// Print every transaction.
    #[arg(long, short)]
    transactions: bool,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The committee file (the only thing trusted).
    #[arg(long, short)]
    committee: PathBuf,
    /// Ordering API endpoint of the replica to check.
    #[arg(
        long,
        short,
        default_value = "http://127.0.0.1:17100",
        conflicts_with = "data_dir"
    )]
    endpoint: String,
    /// Check a stopped consensus service's data directory instead of a live replica.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// First epoch (live only; from 0 the chain is checked from the committee's genesis).
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Stop after this many batches (default: every epoch committed when the check starts).
    #[arg(long, conflicts_with = "follow")]
    count: Option<u64>,
    /// Keep verifying new epochs as they are certified.
    #[arg(long)]
    follow: bool,
    /// Longest wait for the next certified batch.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    wait: std::time::Duration,
    /// Print every verified epoch.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// A devnet directory: query all its replicas.
    #[arg(long, conflicts_with = "endpoint")]
    devnet: Option<PathBuf>,
    /// Ordering API endpoints.
    #[arg(long, short)]
    endpoint: Vec<String>,
    /// Market API endpoints (same order).
    #[arg(long)]
    market: Vec<String>,
    /// Gateway gRPC endpoints (same order): adds each replica's per-peer, per-transport links.
    #[arg(long)]
    gateway: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum MarketCommand {
    /// Per-symbol statistics and the state hash.
    State {
        /// Market API endpoint.
        #[arg(long, short, default_value = "http://127.0.0.1:17400")]
        endpoint: String,
    },
    /// One symbol's order book.
    Book {
        /// The symbol.
        symbol: String,
        /// Market API endpoint.
        #[arg(long, short, default_value = "http://127.0.0.1:17400")]
        endpoint: String,
        /// Price levels per side.
        #[arg(long, default_value_t = 10)]
        depth: u32,
    },
    /// Create a market source's Ed25519 key (mode 0600; kept if it exists) and print the line
    /// that registers it in every replica's `[market.sources]`.
    SourceKey {
        /// The source name it will own (and every `<name>:<suffix>`).
        name: String,
        /// The key file.
        #[arg(long, short)]
        out: PathBuf,
    },
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Variants to measure, each on a fresh local cluster.
    #[arg(long, value_delimiter = ',', default_value = "beat0")]
    variant: Vec<Variant>,
    /// Committee sizes to measure.
    #[arg(long, short = 'n', value_delimiter = ',', default_value = "4")]
    replicas: Vec<usize>,
    /// Target transactions per epoch (B).
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Offered load, transactions per second.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Measured window.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    duration: Duration,
    /// Warm-up before the window.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    warmup: Duration,
    /// Transaction size in bytes.
    #[arg(long, default_value_t = 250)]
    tx_bytes: usize,
    /// Most Submit calls in flight.
    #[arg(long, default_value_t = 64)]
    max_in_flight: usize,
    /// Bench an existing cluster at these ordering endpoints instead of starting one.
    #[arg(long)]
    endpoint: Vec<String>,
    /// With --endpoint: the committee file (needed for BEAT2).
    #[arg(long)]
    committee: Option<PathBuf>,
    /// First port of the local cluster.
    #[arg(long, default_value_t = 18_000)]
    base_port: u16,
    /// Directory of the local cluster (deleted before; kept after with --keep).
    #[arg(long, default_value = "target/bench-cluster")]
    dir: PathBuf,
    /// Keep the local cluster's directory (logs) afterwards.
    #[arg(long)]
    keep: bool,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Serve the local cluster's ordering APIs over TLS with client certificates and bearer
    /// tokens (as `devnet --tls`), to measure what that costs.
    #[arg(long)]
    tls: bool,
}

fn parse_endpoints(s: &str) -> anyhow::Result<Endpoints> {
    let mut e = Endpoints::default();
    for part in s.split(',') {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("expected kind=address in {part:?}"))?;
        let slot = match k {
            "tcp" => &mut e.tcp,
            "tor" => &mut e.tor,
            "i2p" => &mut e.i2p,
            _ => anyhow::bail!("unknown transport {k:?} (tcp, tor, i2p)"),
        };
        *slot = Some(v.to_owned());
    }
    Ok(e)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The program local clusters run their services with: this executable, or `BEAT_SERVICE_PROGRAM`
/// when set (a wrapper that runs `beat` under a profiler, say; it gets `run <service> --config F`).
fn current_exe() -> anyhow::Result<PathBuf> {
    if let Some(program) = std::env::var_os("BEAT_SERVICE_PROGRAM") {
        return Ok(PathBuf::from(program));
    }
    std::env::current_exe().context("cannot locate the beat executable")
}

fn print_bench(r: &crate::bench::LocalReport) {
    let l = &r.load;
    let rss: Vec<String> = r
        .peak_rss_mib
        .iter()
        .map(|(k, v)| format!("{k} {v:.0}"))
        .collect();
    println!(
        "{:<6}{} n={:<3} offered {:>6} tx/s  committed {:>8.0} tx/s  latency p50 {:>7.1} ms p99 {:>7.1} ms max {:>7.1} ms  epochs {:>5}  shed {}  errors {}  peak RSS MiB: {}",
        r.variant,
        if r.tls { "+tls" } else { "" },
        r.n,
        l.offered_rate,
        l.throughput_tps,
        l.latency_ms.p50,
        l.latency_ms.p99,
        l.latency_ms.max,
        l.epochs,
        l.shed,
        l.submit_errors,
        rss.join(", ")
    );
}

fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let load = LoadOptions {
        endpoints: args.endpoint.clone(),
        watch: args.endpoint.first().cloned().unwrap_or_default(),
        committee: args
            .committee
            .as_deref()
            .map(CommitteeFile::load)
            .transpose()?,
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
        tx_bytes: args.tx_bytes,
        max_in_flight: args.max_in_flight,
        drain: Duration::from_secs(30),
    };
    if !args.endpoint.is_empty() {
        let report = rt.block_on(run_load(load))?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        if let Some(p) = &args.json {
            std::fs::write(p, serde_json::to_vec_pretty(&report)?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut reports = Vec::new();
    for &n in &args.replicas {
        for &variant in &args.variant {
            let mut spec = ClusterSpec::new(&args.dir, current_exe()?);
            spec.replicas = n;
            spec.base_port = args.base_port;
            spec.params = Params {
                variant,
                batch_size: args.batch_size,
                ..Params::default()
            };
            spec.services = vec![Service::Keystore, Service::Gateway, Service::Consensus];
            spec.kdf = KdfParams::insecure_fast_for_tests();
            spec.log_filter = "warn".to_owned();
            spec.tls = args.tls;
            let r = rt.block_on(run_local(LocalBench {
                spec,
                load: load.clone(),
                keep: args.keep,
            }))?;
            print_bench(&r);
            reports.push(r);
        }
    }
    let doc = serde_json::json!({
        "machine": machine_description(),
        "runs": reports,
    });
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_vec_pretty(&doc)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn machine_description() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    serde_json::json!({
        "cpu": cpu,
        "threads": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "os": std::env::consts::OS,
    })
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    crate::monitor::use_client_auth(cli.auth.auth());
    match cli.command {
        Command::Run(a) => Ok(run_service(a.service.into(), a.config.as_deref())),
        Command::Health(a) => {
            let addr = match (a.ops, a.service) {
                (Some(addr), _) => addr,
                (None, Some(s)) => health::ops_address(s.into(), a.config.as_deref())?,
                (None, None) => anyhow::bail!("give a service (or BEAT_SERVICE) or --ops ADDRESS"),
            };
            if runtime()?.block_on(health::is_ready(addr, a.timeout)) {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("beat: {addr} is not ready");
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Devnet(a) => {
            let mut spec = ClusterSpec::new(&a.dir, current_exe()?);
            spec.replicas = a.replicas;
            spec.base_port = a.base_port;
            spec.params = a.params.params();
            spec.log_filter = a.log_filter;
            spec.tls = a.tls;
            if a.no_state {
                spec.services = vec![Service::Keystore, Service::Gateway, Service::Consensus];
            } else if a.feed_rate > 0 {
                spec.feed = Some(FeedSpec {
                    events_per_second: a.feed_rate,
                    symbols: a.symbols,
                });
            }
            runtime()?.block_on(devnet(DevnetOptions {
                spec,
                fresh: a.fresh,
                duration: a.duration,
                interval: a.interval,
            }))
        }
        Command::Keygen(a) => {
            let endpoints = a
                .replicas
                .iter()
                .map(|s| parse_endpoints(s))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let endpoints_len = endpoints.len();
            let file = keygen(&KeygenOptions {
                out: a.out.clone(),
                name: a.name,
                params: a.params.params(),
                endpoints,
                passphrase_file: a.passphrase_file,
                kdf: KdfParams::default(),
                tls: a.tls.then(|| crate::tls::TlsOptions {
                    server_names: (0..endpoints_len)
                        .map(|i| {
                            a.tls_names
                                .iter()
                                .map(|n| n.replace("{i}", &i.to_string()))
                                .collect()
                        })
                        .collect(),
                    clients: a.tls_clients.clone(),
                }),
            })?;
            println!(
                "wrote {} (committee {:?}, {} replicas, {}, digest {}) and replica-<i>/ with each \
                 replica's keystore.bin and passphrase",
                a.out.join("committee.json").display(),
                file.name,
                file.replicas.len(),
                file.params.variant,
                hex::encode(file.digest())
            );
            if a.tls {
                println!(
                    "issued the public APIs' TLS material: tls/ca.pem (clients trust it), tls/ca.key \
                     (keep offline), tls/tokens (every replica's api.tokens_file), \
                     tls/clients/<name>.{{pem,key,token}}, replica-<i>/tls/"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::TorAddress(a) => {
            let gateway: beat_gateway::config::Config =
                beat_config::load("gateway", a.config.as_deref())?;
            let mut tor = gateway.tor;
            if let Some(d) = a.state_dir {
                tor.state_dir = d;
            }
            if let Some(d) = a.cache_dir {
                tor.cache_dir = d;
            }
            if a.arti_config.is_some() {
                tor.arti_config = a.arti_config;
            }
            if let Some(n) = a.nickname {
                tor.nickname = n;
            }
            if let Some(p) = a.onion_port {
                tor.onion_port = p;
            }
            println!("{}", beat_gateway::transport::onion_endpoint(&tor)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::I2pAddress(a) => {
            let gateway: beat_gateway::config::Config =
                beat_config::load("gateway", a.config.as_deref())?;
            let mut i2p = gateway.i2p;
            if let Some(s) = a.sam {
                i2p.sam = s;
            }
            if let Some(k) = a.key_file {
                i2p.key_file = k;
            }
            let destination =
                runtime()?.block_on(beat_gateway::transport::i2p_destination(&i2p))?;
            if a.b32 {
                let name = beat_gateway::transport::b32_address(&destination)
                    .context("the destination is not valid base64")?;
                println!("{name}");
            } else {
                println!("{destination}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Submit(a) => {
            let mut txs: Vec<Vec<u8>> =
                a.transactions.into_iter().map(String::into_bytes).collect();
            if let Some(f) = &a.file {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                txs.extend(
                    text.lines()
                        .filter(|l| !l.is_empty())
                        .map(|l| l.as_bytes().to_vec()),
                );
            }
            anyhow::ensure!(!txs.is_empty(), "no transactions given");
            runtime()?.block_on(client::submit(a.endpoint, a.committee.as_deref(), txs))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(a) => {
            let report = match &a.data_dir {
                Some(dir) => crate::verify::stored(&a.committee, dir, a.verbose),
                None => runtime()?.block_on(crate::verify::live(
                    &a.committee,
                    &a.endpoint,
                    a.from,
                    a.count,
                    a.follow,
                    a.wait,
                    a.verbose,
                )),
            };
            match report {
                Ok(r) => {
                    println!("ok: {}", r.summary());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("verification failed: {e:#}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Watch(a) => {
            runtime()?.block_on(client::watch(&a.endpoint, a.from, a.count, a.transactions))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(a) => {
            let (ordering, market, gateways) = match &a.devnet {
                Some(dir) => {
                    let committee = CommitteeFile::load(&dir.join("committee.json"))?;
                    let base = devnet_base_port(&committee)?;
                    let n = committee.replicas.len();
                    let ports = |i: usize| Ports {
                        base,
                        replica: i as u16,
                    };
                    let state_running =
                        (0..n).any(|i| dir.join(format!("replica-{i}/state.db")).exists());
                    // A TLS devnet (`devnet --tls`): its own client credentials.
                    let scheme = if crate::tls::ca_file(dir).exists() {
                        crate::monitor::use_client_auth(crate::tls::client_auth(dir, "client"));
                        "https"
                    } else {
                        "http"
                    };
                    (
                        (0..n)
                            .map(|i| format!("{scheme}://{}", ports(i).consensus()))
                            .collect(),
                        if state_running {
                            (0..n)
                                .map(|i| format!("{scheme}://{}", ports(i).state()))
                                .collect()
                        } else {
                            Vec::new()
                        },
                        (0..n)
                            .map(|i| crate::layout::Sockets::of(dir, i).gateway.endpoint())
                            .collect(),
                    )
                }
                None if a.endpoint.is_empty() => {
                    anyhow::bail!("give --devnet DIR or --endpoint URL")
                }
                None => (a.endpoint, a.market, a.gateway),
            };
            let rt = runtime()?;
            let all_up = rt.block_on(client::status(&ordering, &market))?;
            if !gateways.is_empty() {
                rt.block_on(client::links(&gateways))?;
            }
            Ok(if all_up {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Market(MarketCommand::SourceKey { name, out }) => {
            beat_state::market::sources::validate_name(&name).map_err(anyhow::Error::msg)?;
            let key = beat_state::client_key::load_or_create(&out)?.public();
            println!("# [market.sources] of every replica's state.toml:");
            println!("{name:?} = \"{key}\"");
            Ok(ExitCode::SUCCESS)
        }
        Command::Market(MarketCommand::State { endpoint }) => {
            runtime()?.block_on(client::market_state(&endpoint))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Market(MarketCommand::Book {
            symbol,
            endpoint,
            depth,
        }) => {
            runtime()?.block_on(client::market_book(&endpoint, &symbol, depth))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(a) => bench(a),
    }
}

/// A devnet's base port, from replica 0's peer endpoint (`127.0.0.1:<base>`).
fn devnet_base_port(committee: &CommitteeFile) -> anyhow::Result<u16> {
    let tcp = committee
        .replicas
        .first()
        .and_then(|r| r.endpoints.tcp.as_deref())
        .context("the committee has no TCP endpoint")?;
    let port: u16 = tcp
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .with_context(|| format!("cannot parse the port of {tcp:?}"))?;
    Ok(port)
}

/// The whole command line: parses `std::env::args` and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("beat: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn endpoints_parse() {
        let e = parse_endpoints("tcp=10.0.0.1:7000,tor=abc.onion:7000").unwrap();
        assert_eq!(e.tcp.as_deref(), Some("10.0.0.1:7000"));
        assert_eq!(e.tor.as_deref(), Some("abc.onion:7000"));
        assert!(e.i2p.is_none());
        assert!(parse_endpoints("udp=x").is_err());
        assert!(parse_endpoints("tcp").is_err());
    }
}
