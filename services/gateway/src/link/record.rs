//! Sealed records: every frame after the handshake.
//!
//! The handshake leaves both sides with the X25519 shared secret of their ephemeral keys and
//! the transcript hash of the two Hellos. [`SessionKeys::derive`] expands them with
//! HKDF-SHA256 (salt: the transcript hash; one `info` per direction) into two 32-byte
//! ChaCha20-Poly1305 keys, one per direction, so neither side ever encrypts under the other's
//! key. The nonce of a record is the number of records sent before it in its direction
//! (`0u32 ‖ u64be(counter)`): it is never sent, so a record that was dropped, replayed,
//! reordered or injected fails to open at the receiver, which closes the connection. A
//! direction's counter never wraps: at 2⁶⁴ records the link is closed instead.
//!
//! A record is the encoded `PeerFrame` followed by the 16-byte Poly1305 tag, framed like any
//! frame (4-byte length); no associated data is needed because the keys are unique to the
//! connection and direction.

use beat_proto::wire::v2::PeerFrame;
use bytes::{Bytes, BytesMut};
use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, Nonce, Tag};
use futures::SinkExt;
use hkdf::Hkdf;
use prost::Message;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::codec::{self, FrameError, FrameReader, FrameWriter, LENGTH_PREFIX};

/// Bytes a record adds to its frame (the Poly1305 tag).
pub const TAG_BYTES: usize = 16;

const INFO_INITIATOR: &[u8] = b"beat/peer-link/v2 initiator to responder";
const INFO_RESPONDER: &[u8] = b"beat/peer-link/v2 responder to initiator";

/// Why a record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The frame underneath failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The record does not open under the expected key and counter: tampered with, injected,
    /// replayed, reordered or truncated on the way.
    #[error("record {0} does not authenticate")]
    Forged(u64),
    /// The opened record is not a `PeerFrame`.
    #[error("malformed frame inside a record: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// A direction used up its nonces.
    #[error("record counter exhausted")]
    Exhausted,
    /// A frame is beyond what one record can seal.
    #[error("a {0}-byte frame is too large for one record")]
    TooLarge(usize),
    /// Writing failed.
    #[error("write failed: {0}")]
    Write(std::io::Error),
}

impl RecordError {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Frame(e) => e.reason(),
            Self::Forged(_) => "forged_record",
            Self::Malformed(_) => "malformed_frame",
            Self::Exhausted => "counter_exhausted",
            Self::TooLarge(_) => "oversized_frame",
            Self::Write(_) => "io",
        }
    }
}

/// The two directions' keys of one connection.
pub struct SessionKeys {
    send: Zeroizing<[u8; 32]>,
    receive: Zeroizing<[u8; 32]>,
}

impl SessionKeys {
    /// Derives the keys from the X25519 shared secret and the transcript hash of both Hellos;
    /// `initiator` says which side this is.
    pub fn derive(shared: &[u8; 32], transcript_hash: &[u8; 32], initiator: bool) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(transcript_hash), shared);
        let expand = |info: &[u8]| {
            let mut key = Zeroizing::new([0; 32]);
            hkdf.expand(info, key.as_mut())
                .expect("32 bytes is a valid HKDF-SHA256 output length");
            key
        };
        let (send, receive) = if initiator {
            (INFO_INITIATOR, INFO_RESPONDER)
        } else {
            (INFO_RESPONDER, INFO_INITIATOR)
        };
        Self {
            send: expand(send),
            receive: expand(receive),
        }
    }

    /// Wraps a connection's frame reader and writer in these keys.
    pub fn seal(self, reader: FrameReader, writer: FrameWriter) -> (RecordReader, RecordWriter) {
        (
            RecordReader {
                frames: reader,
                cipher: ChaCha20Poly1305::new((&*self.receive).into()),
                counter: 0,
            },
            RecordWriter {
                frames: writer,
                cipher: ChaCha20Poly1305::new((&*self.send).into()),
                counter: 0,
            },
        )
    }
}

fn nonce(counter: u64) -> Nonce {
    let mut nonce = Nonce::default();
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

/// Opens the records of one direction.
pub struct RecordReader {
    frames: FrameReader,
    cipher: ChaCha20Poly1305,
    counter: u64,
}

impl RecordReader {
    /// Reads and opens the next record; returns it with its size on the wire. Cancel-safe:
    /// nothing is consumed unless a whole frame arrived.
    pub async fn next(&mut self) -> Result<(PeerFrame, usize), RecordError> {
        let raw = codec::next_raw(&mut self.frames).await?;
        let wire = raw.len() + LENGTH_PREFIX;
        Ok((self.open(raw)?, wire))
    }

    fn open(&mut self, mut raw: BytesMut) -> Result<PeerFrame, RecordError> {
        let counter = self.counter;
        let Some(body) = raw.len().checked_sub(TAG_BYTES) else {
            return Err(RecordError::Forged(counter));
        };
        let tag = raw.split_off(body);
        let tag = Tag::try_from(&tag[..]).map_err(|_| RecordError::Forged(counter))?;
        self.cipher
            .decrypt_inout_detached(&nonce(counter), &[], raw.as_mut().into(), &tag)
            .map_err(|_| RecordError::Forged(counter))?;
        self.counter = counter.checked_add(1).ok_or(RecordError::Exhausted)?;
        Ok(PeerFrame::decode(raw.freeze())?)
    }

    /// Changes the frame limit (the record's plaintext limit plus the tag).
    pub fn set_max_plaintext(&mut self, max: usize) {
        self.frames
            .decoder_mut()
            .set_max_frame_length(max + TAG_BYTES);
    }
}

/// Seals the records of one direction.
pub struct RecordWriter {
    frames: FrameWriter,
    cipher: ChaCha20Poly1305,
    counter: u64,
}

impl RecordWriter {
    /// Seals `frame` and queues it for writing without flushing; returns its size on the wire.
    pub async fn feed(&mut self, frame: &PeerFrame) -> Result<usize, RecordError> {
        let record = self.seal(frame)?;
        let wire = record.len() + LENGTH_PREFIX;
        self.frames.feed(record).await.map_err(RecordError::Write)?;
        Ok(wire)
    }

    /// Flushes what was fed.
    pub async fn flush(&mut self) -> Result<(), RecordError> {
        SinkExt::<Bytes>::flush(&mut self.frames)
            .await
            .map_err(RecordError::Write)
    }

    /// Seals, writes and flushes one frame.
    pub async fn send(&mut self, frame: &PeerFrame) -> Result<usize, RecordError> {
        let wire = self.feed(frame).await?;
        self.flush().await?;
        Ok(wire)
    }

    /// The connection underneath. Bytes written here bypass the seal (and break the link at
    /// the peer): for tests that play an attacker on the path.
    pub fn get_mut(&mut self) -> &mut tokio::io::WriteHalf<crate::transport::BoxConnection> {
        self.frames.get_mut()
    }

    fn seal(&mut self, frame: &PeerFrame) -> Result<Bytes, RecordError> {
        let counter = self.counter;
        self.counter = counter.checked_add(1).ok_or(RecordError::Exhausted)?;
        let mut buf = Vec::with_capacity(frame.encoded_len() + TAG_BYTES);
        frame
            .encode(&mut buf)
            .expect("a Vec grows to any encoded length");
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce(counter), &[], buf.as_mut_slice().into())
            .map_err(|_| RecordError::TooLarge(buf.len()))?;
        buf.extend_from_slice(&tag);
        Ok(Bytes::from(buf))
    }

    /// Changes the frame limit (the record's plaintext limit plus the tag).
    pub fn set_max_plaintext(&mut self, max: usize) {
        self.frames
            .encoder_mut()
            .set_max_frame_length(max + TAG_BYTES);
    }
}

#[cfg(test)]
mod tests;
