//! Logging, tracing, metrics, the ops HTTP port and shutdown handling shared by the BEAT
//! services.
//!
//! Every service calls [`logging::init`] first, creates its metrics on a
//! [`prometheus::Registry`] from [`metrics::registry`], serves `/metrics`, `/healthz` and
//! `/readyz` with [`ops::serve`], registers `grpc.health.v1` and server reflection on its gRPC
//! server with [`grpc`], and stops on [`shutdown::signal`].
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod grpc;
pub mod limit;
pub mod local;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod probe;
pub mod service;
pub mod shutdown;
pub mod watch;

pub use ops::Health;
