//! The BEAT client library: [`client::Client`] (several replicas, failover, idempotent
//! submission, a verified watch that resumes), [`client::Sealer`] (BEAT2 transactions),
//! [`connect`] (TLS, client certificates, bearer tokens) and [`verify`].
//!
//! A client of a BEAT committee trusts no single replica: what one replica serves is checked
//! against the committee file alone. [`verify`] does that for the agreed order — every batch a
//! replica streams or returns comes with the committee's commit certificate (module
//! [`beat_core::certificate`]), and [`verify::ChainVerifier`] recomputes the batch digest from
//! the API message, checks the certificate's signature under the committee's group key, and
//! checks that each certificate continues the history verified before it.
//!
//! ```no_run
//! use beat_client::verify::{ChainVerifier, CommitteeInfo};
//! # fn f(batch: beat_proto::common::v1::Batch, cert: beat_proto::common::v1::CommitCertificate)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! let committee = CommitteeInfo::load(std::path::Path::new("committee.json"))?;
//! let mut chain = ChainVerifier::from_genesis(committee);
//! let verified = chain.verify(&batch, &cert)?; // for each streamed batch, in order
//! println!("epoch {} verified, link {}", verified.epoch, verified.link);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod client;
pub mod connect;
pub mod verify;
