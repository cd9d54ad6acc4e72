//! Who may call a public API, against a real tonic server (the health service stands in for
//! the ordering and market APIs): plaintext is refused off loopback, and a server with TLS, a
//! client CA and bearer tokens answers only a client that has all three right.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use beat_client::connect::ClientAuth;
mod common;

use beat_telemetry::{
    api::ApiLimits,
    auth::{TlsFiles, token_hash},
};
use common::serve_with as serve;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A CA with a server certificate for 127.0.0.1 and one client certificate, under `dir`.
fn pki(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf, PathBuf, PathBuf) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let leaf = |names: Vec<String>, eku| {
        let mut p = CertificateParams::new(names).unwrap();
        p.extended_key_usages = vec![eku];
        let key = KeyPair::generate().unwrap();
        (p.signed_by(&key, &ca).unwrap().pem(), key.serialize_pem())
    };
    let (server, server_key) = leaf(
        vec!["127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client, client_key) = leaf(Vec::new(), ExtendedKeyUsagePurpose::ClientAuth);
    let write = |file: &str, pem: &str| {
        let path = dir.join(format!("{name}-{file}"));
        std::fs::write(&path, pem).unwrap();
        path
    };
    (
        write("ca.pem", &ca.pem()),
        write("server.pem", &server),
        write("server.key", &server_key),
        write("client.pem", &client),
        write("client.key", &client_key),
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("beat-api-auth-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Calls `Health.Check` on `url` as `auth`: `Ok(())` if answered, else the status code.
async fn check(url: &str, auth: &ClientAuth) -> Result<(), Code> {
    let channel = auth.channel(url).map_err(|_| Code::InvalidArgument)?;
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|_| ())
        .map_err(|s| s.code())
}

fn refused(registry: &prometheus::Registry, reason: &str) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == "beat_api_auth_refused_total")
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| m.get_label().iter().any(|l| l.value() == reason))
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

#[test]
fn plaintext_is_refused_off_loopback_unless_a_mesh_terminates_tls() {
    let registry = prometheus::Registry::new();
    let open: std::net::SocketAddr = "0.0.0.0:7100".parse().unwrap();
    let err = ApiLimits::default()
        .server(&registry, open)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("plaintext off loopback"), "{err}");
    let mesh = ApiLimits {
        plaintext_off_loopback: true,
        ..ApiLimits::default()
    };
    assert!(mesh.server(&prometheus::Registry::new(), open).is_ok());
    let missing = ApiLimits {
        tls: Some(TlsFiles {
            cert_file: "/nonexistent/server.pem".into(),
            key_file: "/nonexistent/server.key".into(),
            client_ca_file: None,
            handshake_timeout_ms: 1000,
        }),
        ..ApiLimits::default()
    };
    let err = missing
        .server(&prometheus::Registry::new(), open)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("/nonexistent/server.pem"), "{err}");
}

#[tokio::test]
async fn only_a_client_with_the_cas_certificate_and_a_known_token_is_answered() {
    beat_telemetry::service::install_crypto_provider();
    let dir = temp_dir("mtls");
    let (ca, server, server_key, client, client_key) = pki(&dir, "ours");
    let (other_ca, _, _, other_client, other_key) = pki(&dir, "theirs");
    let token = dir.join("alice.token");
    std::fs::write(&token, "alice-s3cret\n").unwrap();
    let wrong = dir.join("wrong.token");
    std::fs::write(&wrong, "guess").unwrap();
    let tokens = dir.join("tokens");
    std::fs::write(
        &tokens,
        format!("alice {}\n", hex::encode(token_hash("alice-s3cret"))),
    )
    .unwrap();
    let (addr, registry) = serve(ApiLimits {
        tls: Some(TlsFiles {
            cert_file: server,
            key_file: server_key,
            client_ca_file: Some(ca.clone()),
            handshake_timeout_ms: 2_000,
        }),
        tokens_file: Some(tokens),
        ..ApiLimits::default()
    })
    .await;
    let https = format!("https://{addr}");
    let full = ClientAuth {
        ca_file: Some(ca.clone()),
        cert_file: Some(client.clone()),
        key_file: Some(client_key.clone()),
        token_file: Some(token.clone()),
        tls_domain: None,
    };

    assert_eq!(
        check(&https, &full).await,
        Ok(()),
        "the full client is answered"
    );
    // Plaintext to a TLS port: no answer.
    assert!(
        check(&format!("http://{addr}"), &ClientAuth::default())
            .await
            .is_err()
    );
    // TLS without a client certificate: the handshake refuses it.
    let no_cert = ClientAuth {
        cert_file: None,
        key_file: None,
        ..full.clone()
    };
    assert!(check(&https, &no_cert).await.is_err());
    // A certificate from another CA: refused likewise.
    let foreign = ClientAuth {
        cert_file: Some(other_client),
        key_file: Some(other_key),
        ..full.clone()
    };
    assert!(check(&https, &foreign).await.is_err());
    // A client that trusts another CA does not talk to this server.
    let mistrusting = ClientAuth {
        ca_file: Some(other_ca),
        ..full.clone()
    };
    assert!(check(&https, &mistrusting).await.is_err());
    // The right certificate without a token, or with a wrong one: UNAUTHENTICATED.
    let no_token = ClientAuth {
        token_file: None,
        ..full.clone()
    };
    assert_eq!(check(&https, &no_token).await, Err(Code::Unauthenticated));
    let bad_token = ClientAuth {
        token_file: Some(wrong),
        ..full.clone()
    };
    assert_eq!(check(&https, &bad_token).await, Err(Code::Unauthenticated));
    assert_eq!(refused(&registry, "missing"), 1);
    assert_eq!(refused(&registry, "invalid"), 1);
    // And the full client still is.
    assert_eq!(check(&https, &full).await, Ok(()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn tokens_alone_on_loopback_plaintext() {
    let dir = temp_dir("tokens");
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("bob {}\n", hex::encode(token_hash("b0b")))).unwrap();
    let token = dir.join("bob.token");
    std::fs::write(&token, "b0b").unwrap();
    let (addr, _) = serve(ApiLimits {
        tokens_file: Some(tokens),
        ..ApiLimits::default()
    })
    .await;
    let http = format!("http://{addr}");
    assert_eq!(
        check(&http, &ClientAuth::default()).await,
        Err(Code::Unauthenticated)
    );
    let bob = ClientAuth {
        token_file: Some(token),
        ..ClientAuth::default()
    };
    assert_eq!(check(&http, &bob).await, Ok(()));
    std::fs::remove_dir_all(&dir).unwrap();
}
