//! State-service configuration (`beat-state --config state.toml`, overridable with
//! `BEAT_STATE__<SECTION>__<KEY>`). `state.example.toml` documents every key.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use beat_telemetry::logging::LogConfig;
use serde::{Deserialize, Serialize};

use crate::market::{MarketParams, event::is_valid_symbol};

/// The state service's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This replica's index.
    pub replica: u32,
    /// The committee file (for the variant, the delivery mode and the encryption key).
    pub committee: PathBuf,
    /// gRPC listen address of `beat.state.v1.MarketService`.
    pub grpc_listen: SocketAddr,
    /// Ops HTTP listen address (`/metrics`, `/healthz`, `/readyz`).
    pub ops_listen: SocketAddr,
    /// Limits of the market API (connections, request size, timeouts).
    pub api: beat_telemetry::api::ApiLimits,
    /// The replica's consensus service.
    pub consensus: ConsensusConfig,
    /// The sled store.
    pub store: StoreConfig,
    /// Parameters of the state machine; identical at every replica.
    pub market: MarketParams,
    /// The synthetic data feed.
    pub feed: FeedConfig,
    /// Limits of `WatchState` streams.
    pub watch: WatchConfig,
    /// Logging.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            replica: 0,
            committee: PathBuf::from("committee.json"),
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            ops_listen: SocketAddr::from(([127, 0, 0, 1], 9400)),
            api: beat_telemetry::api::ApiLimits::default(),
            consensus: ConsensusConfig::default(),
            store: StoreConfig::default(),
            market: MarketParams::default(),
            feed: FeedConfig::default(),
            watch: WatchConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// What `WatchState` streams may hold: each stream queues at most `buffered_reports` reports
/// beyond what HTTP/2 holds for it, and reads the retained history that many at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchConfig {
    /// Most streams at once; more get `RESOURCE_EXHAUSTED`.
    pub max_watchers: usize,
    /// Reports queued per stream.
    pub buffered_reports: usize,
    /// A stream whose client takes no report for this long is cut off by closing its
    /// connection (the only way to take back what HTTP/2 queued for it).
    #[serde(with = "humantime_serde")]
    pub slow_watcher: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            max_watchers: 1024,
            buffered_reports: 8,
            slow_watcher: Duration::from_secs(15),
        }
    }
}

/// How to reach consensus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusConfig {
    /// The consensus gRPC endpoint, e.g. `http://127.0.0.1:7100`.
    pub endpoint: String,
    /// Timeout for establishing a connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Timeout of one `Submit` call.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// First delay before retrying a failed call or reconnecting.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Largest delay between retries (the delay doubles up to it).
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// TLS and credentials towards consensus, when its API asks for them (`[consensus.auth]`:
    /// `ca_file`, `cert_file`, `key_file`, `token_file`; the endpoint then says `https://`).
    pub auth: beat_client::connect::ClientAuth,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:7100".to_owned(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            auth: beat_client::connect::ClientAuth::default(),
        }
    }
}

/// When the store is flushed to disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushPolicy {
    /// `fsync` after every applied epoch: a crash loses nothing.
    #[default]
    EveryEpoch,
    /// sled flushes in the background every `flush_interval`: a crash may lose the last epochs,
    /// which are applied again from consensus on restart. Never inconsistent: each epoch is
    /// one atomic batch.
    Background,
}

/// The sled store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The sled directory.
    pub path: PathBuf,
    /// When to flush.
    pub flush: FlushPolicy,
    /// Background flush interval (with `flush = "background"`).
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// How many recent epoch reports to keep for `WatchState`.
    pub report_history: u64,
    /// BEAT2 only: the file holding the service's client key (created on first start, mode
    /// 0600). Keep it with the store: events resubmitted under another key get other labels.
    pub client_key: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("state.db"),
            flush: FlushPolicy::EveryEpoch,
            flush_interval: Duration::from_millis(500),
            report_history: 1024,
            client_key: PathBuf::from("state-client.key"),
        }
    }
}

/// Relative frequencies of the synthetic event kinds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedMix {
    /// Venue quotes.
    pub quotes: u32,
    /// Venue trade prints.
    pub trades: u32,
    /// New orders.
    pub orders: u32,
    /// Cancels of the feed's own earlier orders.
    pub cancels: u32,
    /// Percentage of new orders that are market orders.
    pub market_order_percent: u32,
}

impl Default for FeedMix {
    fn default() -> Self {
        Self {
            quotes: 30,
            trades: 10,
            orders: 50,
            cancels: 10,
            market_order_percent: 10,
        }
    }
}

/// The synthetic feed (DataFeed → MarketBatch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedConfig {
    /// Whether to run it.
    pub enabled: bool,
    /// Symbols to generate events for.
    pub symbols: Vec<String>,
    /// Events generated per second, spread over the batch intervals.
    pub events_per_second: u32,
    /// How often a batch of events is generated and handed to the submitter.
    #[serde(with = "humantime_serde")]
    pub batch_interval: Duration,
    /// Most events in one `Submit` call.
    pub max_batch_events: usize,
    /// Most events waiting for consensus; beyond it new events are dropped (and counted in
    /// `beat_state_feed_dropped_total{reason="queue_full"}`).
    pub max_queue: usize,
    /// Base seed; each replica's feed seeds its generator from (seed, replica, start count).
    pub seed: u64,
    /// Event kinds.
    pub mix: FeedMix,
    /// Initial mid-price of every symbol, in ticks.
    pub initial_price: i64,
    /// Largest random-walk step of the mid per event, in ticks.
    pub volatility: i64,
    /// Largest distance of an order or quote from the mid, in ticks.
    pub spread: i64,
    /// Largest quantity of an order, trade or quote side, in lots.
    pub max_quantity: u64,
    /// The feed's Ed25519 source key (a client key file, created on first start if missing).
    /// Every event is signed with it; required when `market.sources` is not empty, where its
    /// public key must be registered under `feed-r<replica>`.
    pub key_file: Option<PathBuf>,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            symbols: vec!["BTC-USD".to_owned(), "ETH-USD".to_owned()],
            events_per_second: 100,
            batch_interval: Duration::from_millis(200),
            max_batch_events: 1000,
            max_queue: 100_000,
            seed: 0,
            mix: FeedMix::default(),
            initial_price: 10_000,
            volatility: 2,
            spread: 10,
            max_quantity: 10,
            key_file: None,
        }
    }
}

/// Most events one `Publish` carries (state.proto).
pub const MAX_PUBLISH_EVENTS: usize = 10_000;
/// Most events one `Submit` carries (consensus.proto).
pub const MAX_SUBMIT_TRANSACTIONS: usize = 10_000;

impl Config {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), String> {
        self.market.validate()?;
        if self.watch.max_watchers == 0
            || self.watch.buffered_reports == 0
            || self.watch.slow_watcher.is_zero()
        {
            return Err(
                "watch: max_watchers, buffered_reports and slow_watcher must be positive"
                    .to_owned(),
            );
        }
        self.api.validate()?;
        let c = &self.consensus;
        if !(c.endpoint.starts_with("http://") || c.endpoint.starts_with("https://")) {
            return Err("consensus.endpoint must be an http:// or https:// URL".to_owned());
        }
        if c.request_timeout.is_zero() || c.connect_timeout.is_zero() {
            return Err("consensus timeouts must be positive".to_owned());
        }
        if c.backoff_initial.is_zero() || c.backoff_max < c.backoff_initial {
            return Err("consensus.backoff_initial must be positive and ≤ backoff_max".to_owned());
        }
        if self.store.report_history == 0 {
            return Err("store.report_history must be at least 1".to_owned());
        }
        if self.store.flush == FlushPolicy::Background && self.store.flush_interval.is_zero() {
            return Err("store.flush_interval must be positive".to_owned());
        }
        self.feed.validate()
    }
}

impl FeedConfig {
    fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if self.symbols.is_empty() {
            return Err("feed.symbols must not be empty".to_owned());
        }
        if let Some(s) = self.symbols.iter().find(|s| !is_valid_symbol(s)) {
            return Err(format!("feed.symbols: {s:?} is not a valid symbol"));
        }
        if self.events_per_second == 0 {
            return Err("feed.events_per_second must be at least 1".to_owned());
        }
        if self.batch_interval < Duration::from_millis(1) {
            return Err("feed.batch_interval must be at least 1ms".to_owned());
        }
        if self.max_batch_events == 0 || self.max_batch_events > MAX_SUBMIT_TRANSACTIONS {
            return Err(format!(
                "feed.max_batch_events must be in 1..={MAX_SUBMIT_TRANSACTIONS}"
            ));
        }
        if self.max_queue < self.max_batch_events {
            return Err("feed.max_queue must be at least max_batch_events".to_owned());
        }
        let m = &self.mix;
        let weights = [m.quotes, m.trades, m.orders, m.cancels];
        if weights.iter().all(|w| *w == 0) {
            return Err("feed.mix: at least one kind needs a positive weight".to_owned());
        }
        if m.market_order_percent > 100 {
            return Err("feed.mix.market_order_percent must be at most 100".to_owned());
        }
        let max_price = crate::market::event::MAX_PRICE;
        if self.initial_price < 1 || self.initial_price > max_price / 2 {
            return Err("feed.initial_price must be in 1..=500000000000".to_owned());
        }
        if self.volatility < 0 || self.spread < 1 || self.spread > self.initial_price {
            return Err(
                "feed.volatility must be ≥ 0 and feed.spread in 1..=initial_price".to_owned(),
            );
        }
        if self.max_quantity == 0 || self.max_quantity > crate::market::event::MAX_QUANTITY {
            return Err("feed.max_quantity must be in 1..=1000000000000".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use figment::{
        Figment,
        providers::{Format, Serialized, Toml},
        value::Value,
    };

    use super::*;

    #[test]
    fn the_example_documents_the_defaults_and_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("state.example.toml");
        let loaded: Config = beat_config::load("state-example-test", Some(&path)).unwrap();
        assert_eq!(loaded, Config::default(), "the example shows the defaults");
        loaded.validate().unwrap();
        // And it lists every key.
        fn keys(prefix: &str, value: &Value, out: &mut BTreeSet<String>) {
            if let Value::Dict(_, dict) = value {
                for (k, v) in dict {
                    keys(&format!("{prefix}{k}."), v, out);
                }
            } else if !matches!(value, Value::Empty(..)) {
                // An optional key without a default (None) is documented as a comment.
                out.insert(prefix.to_owned());
            }
        }
        let (mut example, mut defaults) = (BTreeSet::new(), BTreeSet::new());
        let value: Value = Figment::from(Toml::file(&path)).extract().unwrap();
        keys("", &value, &mut example);
        let value: Value = Figment::from(Serialized::defaults(Config::default()))
            .extract()
            .unwrap();
        keys("", &value, &mut defaults);
        assert_eq!(example, defaults);
        assert!(example.len() > 30, "{example:?}");
    }

    #[test]
    fn invalid_configurations_are_refused_with_the_key() {
        let enabled = || Config {
            feed: FeedConfig {
                enabled: true,
                ..FeedConfig::default()
            },
            ..Config::default()
        };
        enabled().validate().unwrap();
        type Mutation = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "market.dedup_window_epochs",
                Box::new(|c| c.market.dedup_window_epochs = 0),
            ),
            (
                "consensus.endpoint",
                Box::new(|c| c.consensus.endpoint = "127.0.0.1:7100".into()),
            ),
            (
                "backoff",
                Box::new(|c| c.consensus.backoff_max = Duration::from_millis(1)),
            ),
            (
                "store.report_history",
                Box::new(|c| c.store.report_history = 0),
            ),
            (
                "feed.symbols",
                Box::new(|c| c.feed.symbols = vec!["btc".into()]),
            ),
            ("feed.symbols", Box::new(|c| c.feed.symbols.clear())),
            (
                "feed.events_per_second",
                Box::new(|c| c.feed.events_per_second = 0),
            ),
            (
                "feed.max_batch_events",
                Box::new(|c| c.feed.max_batch_events = 10_001),
            ),
            ("feed.max_queue", Box::new(|c| c.feed.max_queue = 10)),
            (
                "feed.mix",
                Box::new(|c| {
                    c.feed.mix = FeedMix {
                        quotes: 0,
                        trades: 0,
                        orders: 0,
                        cancels: 0,
                        market_order_percent: 0,
                    }
                }),
            ),
            ("feed.spread", Box::new(|c| c.feed.spread = 0)),
            ("feed.max_quantity", Box::new(|c| c.feed.max_quantity = 0)),
        ];
        for (key, mutate) in cases {
            let mut c = enabled();
            mutate(&mut c);
            let e = c.validate().unwrap_err();
            assert!(e.contains(key), "{key}: {e}");
        }
        // The feed's settings only matter when it runs.
        let mut off = Config::default();
        off.feed.symbols.clear();
        off.validate().unwrap();
    }
}
