//! Peer links: framing, admission, the authenticated key exchange, sealed records, the
//! connection tasks, and the dial and accept loops that keep one connection per peer,
//! transport and direction.
//!
//! Each replica dials every peer on every transport for its own outbound data; the connections
//! peers dial carry their data in and our Acks back. There is no tie-breaking: each pair of
//! replicas has one connection per direction per transport.

pub mod admission;
pub mod codec;
pub mod connection;
pub mod context;
pub mod handshake;
pub mod record;
pub mod status;
pub mod supervisor;

pub use context::Context;
pub use status::{LinkStatus, LinkTable};
