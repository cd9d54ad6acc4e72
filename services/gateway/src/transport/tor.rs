//! Tor, through an embedded arti client or an operator's own tor daemon.
//!
//! **Embedded (default).** The gateway runs one [`TorClient`] with its state (guards, and the
//! onion service's identity key in arti's keystore) under `tor.state_dir` and its directory
//! cache under `tor.cache_dir`. Inbound peers reach this replica through an onion service whose
//! identity is kept in that state directory, so the address stays the same across restarts;
//! `beat tor-address` creates the identity ahead of time and prints the address for the
//! committee file ([`onion_endpoint`]). Outbound, a peer's `tor` endpoint is either
//! `<56 chars>.onion:<port>` (reached through a rendezvous circuit) or any other `host:port`
//! (reached through a Tor exit). `tor.arti_config` names an extra arti TOML file merged into
//! the client configuration: a private test network's authorities and fallback caches, or any
//! other arti setting.
//!
//! **External (`tor.socks5 = "host:port"`).** Outbound connections go through that SOCKS5
//! proxy (an operator's tor with `SocksPort`); inbound connections arrive on `tor.listen`,
//! where the operator's tor forwards its own onion service (`HiddenServicePort`). arti is not
//! started.
//!
//! Neither mode authenticates anything: the link protocol above does.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use arti_client::{
    TorClient, TorClientConfig,
    config::{CfgPath, TorClientConfigBuilder, onion_service::OnionServiceConfigBuilder},
};
use futures::{StreamExt, future::BoxFuture};
use safelog::DisplayRedacted;
use tokio::{
    net::TcpListener,
    sync::{Mutex, Semaphore, mpsc},
};
use tor_cell::relaycell::msg::Connected;
use tor_hsservice::{RunningOnionService, config::TokenBucketConfig};
use tor_rtcompat::PreferredRuntime;

use super::{Accepted, BoxConnection, Transport, TransportError};
use crate::config::TorConfig;

/// Inbound streams accepted by the onion service but not yet taken by the gateway.
const ACCEPT_QUEUE: usize = 64;

/// Why the Tor transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum TorError {
    /// The extra arti configuration file could not be read.
    #[error("cannot read the arti configuration {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The extra arti configuration file is not valid arti TOML.
    #[error("invalid arti configuration {path}: {source}")]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// arti refused the resulting configuration.
    #[error("invalid Tor configuration: {0}")]
    Config(String),
    /// The onion-service nickname is not acceptable to arti.
    #[error("invalid onion-service nickname {nickname:?}: {reason}")]
    Nickname {
        /// The nickname.
        nickname: String,
        /// Why.
        reason: String,
    },
    /// The arti client or the onion service could not be created or launched.
    #[error("cannot start Tor: {0}")]
    Start(String),
    /// The inbound listener (external mode) could not be bound.
    #[error("cannot listen for onion-service connections on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The Tor transport (name `"tor"`).
pub struct TorTransport {
    mode: Mode,
    inbound: Inbound,
    connect_timeout: Duration,
}

enum Mode {
    Arti {
        client: Arc<TorClient<PreferredRuntime>>,
    },
    Socks5 {
        proxy: String,
    },
}

enum Inbound {
    /// No onion service: this replica only dials.
    None,
    /// Streams the embedded onion service accepted. The service stays up while this is held.
    Onion {
        _service: Arc<RunningOnionService>,
        streams: Mutex<mpsc::Receiver<Accepted>>,
    },
    /// Connections an external tor forwards from its onion service.
    Listener(TcpListener),
}

impl std::fmt::Debug for TorTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.mode {
            Mode::Arti { .. } => "arti".to_owned(),
            Mode::Socks5 { proxy } => format!("socks5 {proxy}"),
        };
        let inbound = match &self.inbound {
            Inbound::None => "none",
            Inbound::Onion { .. } => "onion service",
            Inbound::Listener(_) => "listener",
        };
        f.debug_struct("TorTransport")
            .field("mode", &mode)
            .field("inbound", &inbound)
            .finish()
    }
}

// === impl TorTransport ===

impl TorTransport {
    /// Starts Tor as `config` says: the embedded arti client (bootstrapping in the background)
    /// and its onion service, or the external-proxy mode. Must run inside a Tokio runtime.
    pub async fn start(config: &TorConfig) -> Result<Self, TorError> {
        if let Some(proxy) = &config.socks5 {
            let inbound = match config.listen {
                Some(addr) => Inbound::Listener(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| TorError::Listen { addr, source })?,
                ),
                None => Inbound::None,
            };
            return Ok(Self {
                mode: Mode::Socks5 {
                    proxy: proxy.clone(),
                },
                inbound,
                connect_timeout: config.connect_timeout,
            });
        }
        let arti_config = client_config(config)?;
        // arti's rustls channels need the process's rustls provider (ring, as everywhere).
        beat_telemetry::service::install_crypto_provider();
        let client = TorClient::builder()
            .config(arti_config)
            .create_unbootstrapped()
            .map_err(|e| TorError::Start(e.to_string()))?;
        {
            let client = client.clone();
            tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                match client.bootstrap().await {
                    Ok(()) => tracing::info!(
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "tor bootstrapped"
                    ),
                    // Dialling retries bootstrap on demand; this is only the first attempt.
                    Err(e) => {
                        tracing::info!(error = %e, "tor bootstrap failed, retrying on demand")
                    }
                }
            });
        }
        let inbound = if config.onion_service {
            launch_service(&client, config)?
        } else {
            Inbound::None
        };
        Ok(Self {
            mode: Mode::Arti { client },
            inbound,
            connect_timeout: config.connect_timeout,
        })
    }

    /// One dial through the embedded client, on circuits of its own.
    ///
    /// arti runs each onion-service connection attempt as one task per (service, isolation),
    /// and every `connect` with the same isolation waits on that task rather than starting
    /// another. Dropping our `connect` at [`TorConfig::connect_timeout`] does not end the task:
    /// when the service never completes the rendezvous, arti waits out its own rendezvous
    /// timeout (derived from its circuit-build estimate, a minute or more on a young client)
    /// and then tries the next introduction point, so one attempt can outlive several of our
    /// timeouts, and every redial to that peer would only queue behind it. A fresh isolation
    /// token per call gives each attempt its own rendezvous point and introduction circuit
    /// (and lets [`hedged`] run two at once); abandoned ones end by arti's own timeouts, so
    /// at most two per `connect_timeout` per unreachable peer are started. Peer links dial
    /// rarely (once per link, then only after a loss), so not sharing circuits between dials
    /// costs nothing measurable. Seen on the private test network (`e2e/tests/tor.rs`): the
    /// C tor onion service never answered rendezvous through one particular relay, and each
    /// gateway that picked it stayed unable to reach that replica.
    async fn dial_arti(
        client: &TorClient<PreferredRuntime>,
        endpoint: &str,
    ) -> Result<BoxConnection, TransportError> {
        let (host, port) = split_endpoint(endpoint)?;
        let stream = client
            .isolated_client()
            .connect((host, port))
            .await
            .map_err(dial_error)?;
        Ok(Box::new(stream))
    }

    async fn dial_socks5(proxy: &str, endpoint: &str) -> Result<BoxConnection, TransportError> {
        let (host, port) = split_endpoint(endpoint)?;
        let stream = tokio_socks::tcp::Socks5Stream::connect(proxy, (host, port))
            .await
            .map_err(|e| match e {
                tokio_socks::Error::Io(io) => TransportError::Io(io),
                other => TransportError::Unavailable(format!("SOCKS5 proxy {proxy}: {other}")),
            })?;
        Ok(Box::new(stream))
    }
}

impl Transport for TorTransport {
    fn name(&self) -> &'static str {
        "tor"
    }

    fn dial<'a>(
        &'a self,
        endpoint: &'a str,
    ) -> BoxFuture<'a, Result<BoxConnection, TransportError>> {
        Box::pin(async move {
            let attempt = async {
                match &self.mode {
                    Mode::Arti { client } => {
                        hedged(hedge_after(self.connect_timeout), || {
                            Self::dial_arti(client, endpoint)
                        })
                        .await
                    }
                    Mode::Socks5 { proxy } => Self::dial_socks5(proxy, endpoint).await,
                }
            };
            tokio::time::timeout(self.connect_timeout, attempt)
                .await
                .map_err(|_| TransportError::Timeout)?
        })
    }

    fn accept(&self) -> BoxFuture<'_, Result<Accepted, TransportError>> {
        Box::pin(async move {
            match &self.inbound {
                // Nothing ever arrives; the accept loop just waits until shutdown.
                Inbound::None => futures::future::pending().await,
                Inbound::Onion { streams, .. } => match streams.lock().await.recv().await {
                    Some(a) => Ok(a),
                    // The onion service's task ended, which only happens when the client is
                    // torn down: behave like a transport with no inbound side.
                    None => futures::future::pending().await,
                },
                Inbound::Listener(listener) => {
                    let (stream, remote) = listener.accept().await?;
                    stream.set_nodelay(true)?;
                    Ok(Accepted {
                        connection: Box::new(stream),
                        remote: format!("tor via {remote}"),
                        // Every connection comes from the operator's tor daemon.
                        source: None,
                    })
                }
            }
        })
    }
}

/// When a dial through the embedded client starts a second attempt: a quarter of the connect
/// timeout (15 s of the default 60 s). A first onion-service connection takes 0.5–3 s on the
/// test network and a few seconds on the public one, so only an attempt that is stuck (see
/// [`TorTransport::dial_arti`]) or very slow gets company.
fn hedge_after(connect_timeout: Duration) -> Duration {
    connect_timeout / 4
}

/// Runs `attempt()`; if it has not finished after `after`, runs a second, independent one
/// beside it and returns whichever connects first, or an error only once both have failed.
/// An attempt that fails before `after` is returned as it is (the dial loop backs off and
/// redials); the caller's connect timeout bounds the whole.
async fn hedged<F, Fut>(after: Duration, attempt: F) -> Result<BoxConnection, TransportError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<BoxConnection, TransportError>>,
{
    let first = attempt();
    tokio::pin!(first);
    tokio::select! {
        r = &mut first => return r,
        () = tokio::time::sleep(after) => {}
    }
    tracing::debug!(
        after_ms = after.as_millis() as u64,
        "dial slow, starting a second attempt"
    );
    let second = attempt();
    tokio::pin!(second);
    tokio::select! {
        r = &mut first => match r {
            Ok(c) => Ok(c),
            Err(_) => second.await,
        },
        r = &mut second => match r {
            Ok(c) => Ok(c),
            Err(_) => first.await,
        },
    }
}

/// Launches the onion service and a task that accepts every stream to it.
fn launch_service(
    client: &Arc<TorClient<PreferredRuntime>>,
    config: &TorConfig,
) -> Result<Inbound, TorError> {
    let service_config = service_config(config)?;
    let (service, requests) = client
        .launch_onion_service(service_config)
        .map_err(|e| TorError::Start(e.to_string()))?
        .ok_or_else(|| TorError::Start("the onion service is disabled".to_owned()))?;
    if let Some(address) = service.onion_address() {
        tracing::info!(
            address = %address.display_unredacted(),
            port = config.onion_port,
            "onion service launched"
        );
    }
    let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
    // At most `max_rendezvous` rendezvous circuits are being built at once, each within the
    // connect timeout: the next introduction is not taken from arti's bounded queue until a
    // slot frees, so a flood of introductions costs a bounded amount of circuit work (arti's
    // own `handle_rend_requests` accepts every request concurrently). A built circuit's
    // streams are accepted as they come; Tor closes a circuit with more than
    // `max_streams_per_circuit` of them, and the link handshake decides who is a peer.
    let slots = Arc::new(Semaphore::new(config.max_rendezvous));
    let deadline = config.connect_timeout;
    tokio::spawn(async move {
        let mut requests = std::pin::pin!(requests);
        while let Some(rendezvous) = requests.next().await {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let streams = match tokio::time::timeout(deadline, rendezvous.accept()).await {
                    Ok(Ok(streams)) => streams,
                    Ok(Err(e)) => {
                        return tracing::debug!(error = %e, "cannot complete a rendezvous");
                    }
                    Err(_) => return tracing::debug!("onion-service rendezvous timed out"),
                };
                drop(slot);
                let mut streams = std::pin::pin!(streams);
                while let Some(request) = streams.next().await {
                    // Any virtual port is accepted.
                    match request.accept(Connected::new_empty()).await {
                        Ok(stream) => {
                            let accepted = Accepted {
                                connection: Box::new(stream),
                                remote: "onion service".to_owned(),
                                source: None,
                            };
                            if tx.send(accepted).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "cannot accept an onion-service stream");
                        }
                    }
                }
            });
        }
    });
    let mut events = service.status_events();
    tokio::spawn(async move {
        let mut last = None;
        while let Some(status) = events.next().await {
            let state = format!("{:?}", status.state());
            if last.as_ref() != Some(&state) {
                tracing::debug!(%state, problem = ?status.current_problem(), "onion service status");
                last = Some(state);
            }
        }
    });
    Ok(Inbound::Onion {
        _service: service,
        streams: Mutex::new(rx),
    })
}

/// The arti client configuration: the extra arti file if any, with this replica's storage.
pub fn client_config(config: &TorConfig) -> Result<TorClientConfig, TorError> {
    let mut builder: TorClientConfigBuilder = match &config.arti_config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| TorError::ReadConfig {
                path: path.clone(),
                source,
            })?;
            toml::from_str(&text).map_err(|source| TorError::ParseConfig {
                path: path.clone(),
                source,
            })?
        }
        None => TorClientConfigBuilder::default(),
    };
    builder
        .storage()
        .state_dir(CfgPath::new_literal(absolute(&config.state_dir)?))
        .cache_dir(CfgPath::new_literal(absolute(&config.cache_dir)?));
    builder.build().map_err(|e| TorError::Config(e.to_string()))
}

fn service_config(config: &TorConfig) -> Result<tor_hsservice::OnionServiceConfig, TorError> {
    let nickname = config
        .nickname
        .parse()
        .map_err(|e: tor_hsservice::InvalidNickname| TorError::Nickname {
            nickname: config.nickname.clone(),
            reason: e.to_string(),
        })?;
    OnionServiceConfigBuilder::default()
        .nickname(nickname)
        // Denial-of-service bounds: the introduction points rate-limit introductions for us
        // (DOS_PARAMS), and a client opening more streams on one rendezvous circuit than a
        // peer ever needs loses the circuit.
        .rate_limit_at_intro(Some(TokenBucketConfig::new(
            config.intro_rate,
            config.intro_burst,
        )))
        .max_concurrent_streams_per_circuit(config.max_streams_per_circuit)
        .build()
        .map_err(|e| TorError::Config(e.to_string()))
}

fn absolute(path: &Path) -> Result<PathBuf, TorError> {
    std::path::absolute(path).map_err(|e| TorError::Config(format!("{}: {e}", path.display())))
}

/// Returns this replica's onion endpoint `<address>.onion:<onion_port>` for the committee
/// file, creating the onion-service identity key under `tor.state_dir` if there is none yet.
/// Touches no network.
pub fn onion_endpoint(config: &TorConfig) -> Result<String, TorError> {
    let client_config = client_config(config)?;
    let service = TorClient::<PreferredRuntime>::create_onion_service(
        &client_config,
        service_config(config)?,
    )
    .map_err(|e| TorError::Start(e.to_string()))?;
    let id = service
        .generate_identity_key(Default::default())
        .map_err(|e| TorError::Start(e.to_string()))?;
    Ok(format!("{}:{}", id.display_unredacted(), config.onion_port))
}

/// Not bootstrapped yet means the transport is unavailable; anything else (no descriptor for
/// the onion address yet, circuit failures, a refused stream) is a failed dial.
fn dial_error(e: arti_client::Error) -> TransportError {
    use arti_client::{ErrorKind, HasKind};
    let kind = e.kind();
    let text = format!("{e} ({kind})");
    match kind {
        ErrorKind::BootstrapRequired | ErrorKind::TorAccessFailed => {
            TransportError::Unavailable(text)
        }
        _ => TransportError::Io(std::io::Error::other(text)),
    }
}

/// Splits `host:port` (the host may be an onion address or a bracketed IPv6 address).
fn split_endpoint(endpoint: &str) -> Result<(&str, u16), TransportError> {
    let bad = || TransportError::Unavailable(format!("not a host:port endpoint: {endpoint:?}"));
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests;
