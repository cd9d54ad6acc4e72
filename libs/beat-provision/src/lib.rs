//! Provisioning a committee on disk: the trusted-dealer key ceremony ([`keygen`]), the public
//! APIs' certificates and client credentials ([`tls`]), and where a local committee's replicas
//! keep their files and listen ([`layout`]).
//!
//! `beat keygen` (a production committee) and the local-cluster harness (`beat devnet`, the
//! end-to-end tests, `beat-testkit`) share this crate; it starts nothing and holds no protocol.

pub mod keygen;
pub mod layout;
pub mod tls;
