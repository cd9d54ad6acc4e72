//! Configuration loading and the committee file.
//!
//! Every service reads its configuration in three layers, later ones winning: built-in
//! defaults, an optional TOML file, and environment variables named
//! `BEAT_<SERVICE>__<SECTION>__<KEY>` (for example `BEAT_CONSENSUS__GRPC__LISTEN=0.0.0.0:7100`).
//! Unknown keys are errors, so a typo never silently falls back to a default. The service then
//! validates the result and refuses to start with a message naming the problem.
//!
//! The [`CommitteeFile`] is the public description of a committee that every replica and client
//! shares: consensus parameters, public keys and each replica's endpoints per transport.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod committee;

use std::path::Path;

pub use committee::{CommitteeError, CommitteeFile, Endpoints, ReplicaEntry};
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Serialize, de::DeserializeOwned};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file is missing.
    #[error("configuration file {0} does not exist")]
    Missing(String),
    /// The layers did not combine into a valid configuration.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// The configuration parsed but failed validation.
    #[error("invalid configuration: {0}")]
    Validation(String),
}

/// Loads `T` from its defaults, the TOML file at `file` (if given) and the environment
/// variables `BEAT_<service>__*` (nested keys separated by `__`).
pub fn load<T>(service: &str, file: Option<&Path>) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::Missing(path.display().to_string()));
        }
        figment = figment.merge(Toml::file(path));
    }
    let prefix = format!("BEAT_{}__", service.to_ascii_uppercase());
    figment = figment.merge(Env::prefixed(&prefix).split("__"));
    figment
        .extract()
        .map_err(|e| ConfigError::Invalid(Box::new(e)))
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error by design
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Grpc {
        listen: String,
        max_bytes: u64,
    }

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Cfg {
        replica: u32,
        grpc: Grpc,
    }

    #[test]
    fn layers_defaults_file_and_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "replica = 2\n[grpc]\nlisten = \"127.0.0.1:1\"\nmax_bytes = 5\n",
            )?;
            jail.set_env("BEAT_TESTSVC__GRPC__LISTEN", "0.0.0.0:9");
            let cfg: Cfg = load("testsvc", Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(cfg.replica, 2);
            assert_eq!(cfg.grpc.listen, "0.0.0.0:9");
            assert_eq!(cfg.grpc.max_bytes, 5);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_missing_files_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "replcia = 2\n")?;
            assert!(load::<Cfg>("testsvc", Some(Path::new("c.toml"))).is_err());
            assert!(matches!(
                load::<Cfg>("testsvc", Some(Path::new("missing.toml"))),
                Err(ConfigError::Missing(_))
            ));
            jail.set_env("BEAT_TESTSVC__NOPE", "1");
            assert!(load::<Cfg>("testsvc", None).is_err());
            Ok(())
        });
    }
}
