//! The `main` every service binary shares: configuration, runtime, logging, exit code.

use std::{fmt::Display, future::Future, process::ExitCode};

use crate::logging::{self, LogConfig};

/// Runs one service to completion and turns the outcome into the process exit code.
///
/// `config` is the loaded and validated configuration (or why it was refused: exit code 2);
/// `run` is the service's entry point, run inside an actix system on a single-threaded Tokio
/// runtime (or a pool of `BEAT_WORKER_THREADS` threads) with logging initialised from
/// `log(&config)`. A runtime failure is logged and
/// printed and gives exit code 1.
pub fn main<C, E, F, Fut>(
    name: &str,
    config: Result<C, E>,
    log: fn(&C) -> &LogConfig,
    run: F,
) -> ExitCode
where
    E: Display,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    // One runtime thread per service unless BEAT_WORKER_THREADS asks for a pool. A replica is
    // four services on (often) a couple of cores; its work is a chain of small messages
    // between them, and every hop between runtime threads is a cross-thread wake-up. On the
    // 2-core bench machine a single thread per service cut the median commit latency at
    // 1,000 tx/s from 54 to 37 ms and raised saturation throughput from ~21k to ~24k tx/s
    // (docs/benchmarks.md). The consensus core shares that thread too (it had an arbiter of
    // its own until measured, docs/benchmarks.md); blocking work — WAL syncs, checkpoint
    // writes — runs on threads of its own.
    install_crypto_provider();
    let threads = match std::env::var("BEAT_WORKER_THREADS") {
        Ok(v) => match v.parse::<usize>() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("{name}: BEAT_WORKER_THREADS must be a number, got {v:?}");
                return ExitCode::from(2);
            }
        },
        Err(_) => 0,
    };
    let runtime = move || {
        match threads {
            0 => tokio::runtime::Builder::new_current_thread(),
            n => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(n);
                b
            }
        }
        .enable_all()
        .build()
        .expect("cannot create the Tokio runtime")
    };
    let result = actix_rt::System::with_tokio_rt(runtime).block_on(async move {
        let _guard = logging::init(name, log(&config))?;
        run(config).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Installs rustls's `aws-lc-rs` provider (X25519MLKEM768 preferred) as the process default, once: the one TLS stack of every
/// service (the public APIs, their clients, and arti's Tor channels, which need a process
/// default). Idempotent; every binary and test that makes TLS connections calls it.
pub fn install_crypto_provider() {
    // An error only means a provider is installed already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
