//! Generated protobuf messages and tonic clients/servers for every BEAT API.
//!
//! One module per protobuf package (`proto/beat/<pkg>/v1`). The code is generated at build
//! time from the `.proto` files by `build.rs` with a vendored `protoc`, so the `.proto` files are
//! the single source of truth. [`FILE_DESCRIPTOR_SET`] serves server reflection.
#![allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::use_self,
    clippy::unwrap_used
)]

/// `beat.common.v1`: types shared by every API.
pub mod common {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("beat.common.v1");
    }
}

/// `beat.wire.v2`: the replica-to-replica link protocol between gateways.
pub mod wire {
    /// Version 2: sealed records after a SIGMA-style handshake (version 1, whose frames were
    /// not protected after the handshake, is gone).
    pub mod v2 {
        tonic::include_proto!("beat.wire.v2");
    }
}

/// `beat.gateway.v1`: the gateway's API for the local consensus service.
pub mod gateway {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("beat.gateway.v1");
    }
}

/// `beat.keystore.v1`: secret-key operations.
pub mod keystore {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("beat.keystore.v1");
    }
}

/// `beat.consensus.v1`: the ordering API.
pub mod consensus {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("beat.consensus.v1");
    }
}

/// `beat.state.v1`: the market-data pipeline.
pub mod state {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("beat.state.v1");
    }
}

/// The encoded file-descriptor set of every package, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("beat_descriptor");
