//! `beat run <service>`: one service of a replica in this process.
//!
//! The same code as the per-service binaries (`beat-consensus`, ...), reachable from the single
//! `beat` binary so a container image or a devnet needs one executable. Each service gets its
//! own actix system on a multi-threaded Tokio runtime, exactly as its own binary would.

use std::{path::Path, process::ExitCode};

use crate::layout::Service;

fn system_block_on<F>(future: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("cannot create the Tokio runtime")
    };
    actix_rt::System::with_tokio_rt(runtime).block_on(future)
}

/// Loads `service`'s configuration (file plus `BEAT_<SERVICE>__*` overrides) and runs it until
/// SIGTERM or SIGINT. Exit code 2 means the configuration was refused, 1 a runtime failure.
pub fn run_service(service: Service, config: Option<&Path>) -> ExitCode {
    let name = format!("beat-{}", service.name());
    macro_rules! run {
        ($krate:ident) => {{
            let config: $krate::config::Config = match beat_config::load(service.name(), config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{name}: {e}");
                    return ExitCode::from(2);
                }
            };
            system_block_on(async move {
                let _guard = beat_telemetry::logging::init(&name, &config.log)?;
                $krate::run(config).await
            })
        }};
    }
    let result = match service {
        Service::Keystore => run!(beat_keystore),
        Service::Gateway => run!(beat_gateway),
        Service::Consensus => run!(beat_consensus),
        Service::State => run!(beat_state),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("beat-{}: {e:#}", service.name());
            ExitCode::FAILURE
        }
    }
}
