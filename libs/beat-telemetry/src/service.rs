//! The `main` every service binary shares: configuration, runtime, logging, exit code.

use std::{fmt::Display, future::Future, process::ExitCode};

use crate::logging::{self, LogConfig};

/// Runs one service to completion and turns the outcome into the process exit code.
///
/// `config` is the loaded and validated configuration (or why it was refused: exit code 2);
/// `run` is the service's entry point, run inside an actix system on a multi-threaded Tokio
/// runtime with logging initialised from `log(&config)`. A runtime failure is logged and
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
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
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
