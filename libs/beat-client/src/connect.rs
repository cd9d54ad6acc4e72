//! Connections to a replica's public APIs (ordering and market), as the server asks for them:
//! plaintext on a loopback devnet, TLS (rustls) against a CA the client names, optionally with a
//! client certificate (mutual TLS), and a bearer token on every request.
//!
//! ```no_run
//! use beat_client::connect::{ClientAuth, ordering};
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = ClientAuth {
//!     ca_file: Some("tls/ca.pem".into()),
//!     token_file: Some("tls/client.token".into()),
//!     ..ClientAuth::default()
//! };
//! let mut client = ordering("https://replica-0.example:7100", &auth)?;
//! let status = client.status(beat_proto::consensus::v1::StatusRequest {}).await?;
//! # Ok(()) }
//! ```

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use beat_proto::{
    consensus::v1::ordering_service_client::OrderingServiceClient,
    state::v1::market_service_client::MarketServiceClient,
};
use serde::{Deserialize, Serialize};
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

/// Largest gRPC message a client accepts or sends (a batch can be large).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// How a client proves itself to a replica's public API, and how it checks the replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientAuth {
    /// The CA that issued the server's certificate (PEM); required for `https://` endpoints.
    pub ca_file: Option<PathBuf>,
    /// A client certificate for mutual TLS (PEM), with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// A file holding the bearer token sent with every request.
    pub token_file: Option<PathBuf>,
    /// The name the server's certificate must carry, if not the endpoint's host.
    pub tls_domain: Option<String>,
}

/// Why a connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The endpoint is not a URI tonic accepts.
    #[error("bad endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// A file could not be read or is not what it should be.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The settings contradict each other or the endpoint.
    #[error("{0}")]
    Settings(String),
}

fn read(path: &Path, marker: Option<&str>) -> Result<Vec<u8>, ConnectError> {
    let bytes = std::fs::read(path).map_err(|e| ConnectError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if let Some(marker) = marker
        && !String::from_utf8_lossy(&bytes).contains(marker)
    {
        return Err(ConnectError::File {
            path: path.to_owned(),
            reason: format!("not a PEM file with a {marker}"),
        });
    }
    Ok(bytes)
}

impl ClientAuth {
    /// The bearer token, read from `token_file` (surrounding whitespace dropped).
    pub fn token(&self) -> Result<Option<MetadataValue<Ascii>>, ConnectError> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let bytes = read(path, None)?;
        let token = String::from_utf8(bytes).map_err(|_| ConnectError::File {
            path: path.clone(),
            reason: "the token is not UTF-8".to_owned(),
        })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(ConnectError::File {
                path: path.clone(),
                reason: "the token file is empty".to_owned(),
            });
        }
        let mut value: MetadataValue<Ascii> =
            format!("Bearer {token}")
                .parse()
                .map_err(|_| ConnectError::File {
                    path: path.clone(),
                    reason: "the token has characters a header cannot carry".to_owned(),
                })?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    /// The tonic endpoint for `url` (`http://` or `https://`), with TLS as configured.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, ConnectError> {
        let endpoint =
            Endpoint::from_shared(url.to_owned()).map_err(|e| ConnectError::Endpoint {
                endpoint: url.to_owned(),
                reason: e.to_string(),
            })?;
        let https = url.starts_with("https://");
        let wants_tls =
            self.ca_file.is_some() || self.cert_file.is_some() || self.tls_domain.is_some();
        if !https {
            if wants_tls {
                return Err(ConnectError::Settings(format!(
                    "TLS settings given for the plaintext endpoint {url}: use https://"
                )));
            }
            return Ok(endpoint);
        }
        let Some(ca) = &self.ca_file else {
            return Err(ConnectError::Settings(format!(
                "{url} needs the CA that issued its certificate (ca_file / --ca-file)"
            )));
        };
        // rustls needs a process-wide provider; this one is every BEAT process's.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(ca, Some("CERTIFICATE"))?))
            .timeout(Duration::from_secs(10));
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(
                    read(cert, Some("CERTIFICATE"))?,
                    read(key, Some("PRIVATE KEY"))?,
                ));
            }
            (None, None) => {}
            _ => {
                return Err(ConnectError::Settings(
                    "a client certificate needs both cert_file and key_file".to_owned(),
                ));
            }
        }
        if let Some(domain) = &self.tls_domain {
            tls = tls.domain_name(domain.clone());
        }
        endpoint
            .tls_config(tls)
            .map_err(|e| ConnectError::Settings(format!("TLS for {url}: {e}")))
    }

    /// A lazily connecting channel to `url` (connects on first use, reconnects after
    /// failures) that sends the bearer token with every request.
    pub fn channel(&self, url: &str) -> Result<ApiChannel, ConnectError> {
        let channel = self
            .endpoint(url)?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(InterceptedService::new(channel, Bearer(self.token()?)))
    }
}

/// Adds `authorization: Bearer <token>` to every request, if there is a token.
#[derive(Clone, Debug)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Sends `token` (from [`ClientAuth::token`]) if there is one.
    pub fn new(token: Option<MetadataValue<Ascii>>) -> Self {
        Self(token)
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

/// A channel to a public API with the client's credentials.
pub type ApiChannel = InterceptedService<Channel, Bearer>;

/// An ordering API client for `url`.
pub fn ordering(
    url: &str,
    auth: &ClientAuth,
) -> Result<OrderingServiceClient<ApiChannel>, ConnectError> {
    Ok(OrderingServiceClient::new(auth.channel(url)?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// A market API client for `url`.
pub fn market(
    url: &str,
    auth: &ClientAuth,
) -> Result<MarketServiceClient<ApiChannel>, ConnectError> {
    Ok(MarketServiceClient::new(auth.channel(url)?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_work_are_refused_before_connecting() {
        let with_ca = ClientAuth {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..ClientAuth::default()
        };
        assert!(matches!(
            with_ca.endpoint("http://127.0.0.1:1"),
            Err(ConnectError::Settings(_))
        ));
        assert!(matches!(
            ClientAuth::default().endpoint("https://127.0.0.1:1"),
            Err(ConnectError::Settings(_))
        ));
        assert!(matches!(
            with_ca.endpoint("https://127.0.0.1:1"),
            Err(ConnectError::File { .. })
        ));
        let half = ClientAuth {
            ca_file: Some(file("ca", "-----BEGIN CERTIFICATE-----\n")),
            cert_file: Some("/nonexistent/c.pem".into()),
            ..ClientAuth::default()
        };
        assert!(matches!(
            half.endpoint("https://127.0.0.1:1"),
            Err(ConnectError::Settings(_))
        ));
        assert!(ClientAuth::default().endpoint("http://127.0.0.1:1").is_ok());
    }

    #[test]
    fn tokens_are_read_trimmed_and_refused_when_empty() {
        let auth = ClientAuth {
            token_file: Some(file("token", "  s3cret\n")),
            ..ClientAuth::default()
        };
        let value = auth.token().unwrap().unwrap();
        assert_eq!(value.to_str().unwrap(), "Bearer s3cret");
        assert!(value.is_sensitive());
        let empty = ClientAuth {
            token_file: Some(file("empty", "\n")),
            ..ClientAuth::default()
        };
        assert!(empty.token().is_err());
        assert!(ClientAuth::default().token().unwrap().is_none());
    }

    fn file(name: &str, contents: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("beat-client-connect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}
