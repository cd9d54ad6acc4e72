//! Framing: a 4-byte big-endian length, then an encoded `PeerFrame`.

use beat_proto::wire::v2::PeerFrame;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use prost::Message;
use tokio::io::{ReadHalf, WriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec, LengthDelimitedCodecError};

use crate::transport::BoxConnection;

/// Reads frames from a connection.
pub type FrameReader = FramedRead<ReadHalf<BoxConnection>, LengthDelimitedCodec>;
/// Writes frames to a connection.
pub type FrameWriter = FramedWrite<WriteHalf<BoxConnection>, LengthDelimitedCodec>;

/// Bytes of framing in front of every frame.
pub const LENGTH_PREFIX: usize = 4;

/// The frame limit until the peer is authenticated: Hello and Proof take about 100 bytes.
pub const HANDSHAKE_MAX_FRAME: usize = 1024;

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection.
    #[error("connection closed by the peer")]
    Closed,
    /// The length prefix announced more than the limit.
    #[error("frame larger than {0} bytes")]
    Oversized(usize),
    /// The frame is not a `PeerFrame`.
    #[error("malformed frame: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// The connection failed.
    #[error("connection error: {0}")]
    Io(std::io::Error),
}

impl FrameError {
    /// The metric label of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Oversized(_) => "oversized_frame",
            Self::Malformed(_) => "malformed_frame",
            Self::Io(_) => "io",
        }
    }
}

/// Splits a connection into a frame reader and writer with the frame limit `max_frame`.
pub fn framed(connection: BoxConnection, max_frame: usize) -> (FrameReader, FrameWriter) {
    let codec = || {
        LengthDelimitedCodec::builder()
            .length_field_length(LENGTH_PREFIX)
            .big_endian()
            .max_frame_length(max_frame)
            .new_codec()
    };
    let (read, write) = tokio::io::split(connection);
    (
        FramedRead::new(read, codec()),
        FramedWrite::new(write, codec()),
    )
}

/// Changes the frame limit of both directions.
pub fn set_max_frame(reader: &mut FrameReader, writer: &mut FrameWriter, max_frame: usize) {
    reader.decoder_mut().set_max_frame_length(max_frame);
    writer.encoder_mut().set_max_frame_length(max_frame);
}

/// Reads the next frame's bytes (without the length prefix).
pub async fn next_raw(reader: &mut FrameReader) -> Result<BytesMut, FrameError> {
    match reader.next().await {
        None => Err(FrameError::Closed),
        Some(Ok(bytes)) => Ok(bytes),
        Some(Err(e)) => {
            let oversized = e
                .get_ref()
                .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>());
            if oversized {
                Err(FrameError::Oversized(reader.decoder().max_frame_length()))
            } else {
                Err(FrameError::Io(e))
            }
        }
    }
}

/// Decodes a frame; `bytes` fields share `raw`'s buffer.
pub fn decode(raw: Bytes) -> Result<PeerFrame, FrameError> {
    Ok(PeerFrame::decode(raw)?)
}

/// Encodes a frame.
pub fn encode(frame: &PeerFrame) -> Bytes {
    Bytes::from(frame.encode_to_vec())
}
