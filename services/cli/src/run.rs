//! `beat run <service>`: one service of a replica in this process.
//!
//! The same code as the per-service binaries (`beat-consensus`, ...), reachable from the single
//! `beat` binary so a container image or a devnet needs one executable. Each service gets its
//! own actix system on a multi-threaded Tokio runtime, exactly as its own binary would.

use std::{path::Path, process::ExitCode};

use beat_provision::layout::Service;

/// Loads `service`'s configuration (file plus `BEAT_<SERVICE>__*` overrides) and runs it until
/// SIGTERM or SIGINT. Exit code 2 means the configuration was refused, 1 a runtime failure.
pub fn run_service(service: Service, config: Option<&Path>) -> ExitCode {
    let name = format!("beat-{}", service.name());
    macro_rules! run {
        ($krate:ident) => {
            beat_telemetry::service::main(
                &name,
                beat_config::load::<$krate::config::Config>(service.name(), config),
                |c| &c.log,
                $krate::run,
            )
        };
    }
    match service {
        Service::Keystore => run!(beat_keystore),
        Service::Gateway => run!(beat_gateway),
        Service::Consensus => run!(beat_consensus),
        Service::State => run!(beat_state),
    }
}
