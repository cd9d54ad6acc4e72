//! Sealed records against an attacker who controls the bytes between two sides: tampering,
//! injection, replay, reordering and truncation all fail to open.

use beat_proto::wire::v2::{Ping, peer_frame::Kind};
use bytes::{Bytes, BytesMut};

use super::*;
use crate::link::codec::framed;

const SHARED: [u8; 32] = [7; 32];
const TRANSCRIPT: [u8; 32] = [9; 32];

fn ping(nonce: u64) -> PeerFrame {
    PeerFrame {
        kind: Some(Kind::Ping(Ping { nonce })),
    }
}

/// The initiator's writer, the raw frames it produces (what an on-path attacker sees), a raw
/// writer (what the attacker sends on), and the responder's reader behind it.
struct Wire {
    sender: RecordWriter,
    tapped: FrameReader,
    forward: FrameWriter,
    receiver: RecordReader,
}

fn wire() -> Wire {
    let (a, b) = tokio::io::duplex(1 << 20);
    let (c, d) = tokio::io::duplex(1 << 20);
    let (unused_reader, sender_frames) = framed(Box::new(a), 1 << 20);
    let (tapped, _) = framed(Box::new(b), 1 << 20);
    let (_, forward) = framed(Box::new(c), 1 << 20);
    let (receiver_frames, unused_writer) = framed(Box::new(d), 1 << 20);
    let (_, sender) =
        SessionKeys::derive(&SHARED, &TRANSCRIPT, true).seal(unused_reader, sender_frames);
    let (receiver, _) =
        SessionKeys::derive(&SHARED, &TRANSCRIPT, false).seal(receiver_frames, unused_writer);
    Wire {
        sender,
        tapped,
        forward,
        receiver,
    }
}

impl Wire {
    async fn sealed(&mut self, frame: &PeerFrame) -> BytesMut {
        self.sender.send(frame).await.unwrap();
        codec::next_raw(&mut self.tapped).await.unwrap()
    }

    async fn deliver(&mut self, raw: impl Into<Bytes>) -> Result<PeerFrame, RecordError> {
        self.forward.send(raw.into()).await.unwrap();
        self.receiver.next().await.map(|(frame, _)| frame)
    }
}

#[tokio::test]
async fn records_round_trip_in_order() {
    let mut w = wire();
    for nonce in 0..5 {
        let raw = w.sealed(&ping(nonce)).await;
        // The plaintext is not visible on the wire.
        assert!(
            !raw.windows(8)
                .any(|x| x == nonce.to_le_bytes() && nonce > 0)
        );
        assert_eq!(w.deliver(raw).await.unwrap(), ping(nonce));
    }
}

#[tokio::test]
async fn a_flipped_bit_anywhere_fails() {
    for position in [0, 3, 8] {
        let mut w = wire();
        let mut raw = w.sealed(&ping(42)).await;
        let at = position.min(raw.len() - 1);
        raw[at] ^= 1;
        assert!(matches!(w.deliver(raw).await, Err(RecordError::Forged(0))));
    }
    // In the tag too.
    let mut w = wire();
    let mut raw = w.sealed(&ping(42)).await;
    let last = raw.len() - 1;
    raw[last] ^= 0x80;
    assert!(matches!(w.deliver(raw).await, Err(RecordError::Forged(0))));
}

#[tokio::test]
async fn replayed_dropped_and_reordered_records_fail() {
    // Replay: the same record twice.
    let mut w = wire();
    let first = w.sealed(&ping(1)).await;
    assert!(w.deliver(first.clone()).await.is_ok());
    assert!(matches!(
        w.deliver(first).await,
        Err(RecordError::Forged(1))
    ));

    // Drop: the second record arrives first.
    let mut w = wire();
    let _dropped = w.sealed(&ping(1)).await;
    let second = w.sealed(&ping(2)).await;
    assert!(matches!(
        w.deliver(second).await,
        Err(RecordError::Forged(0))
    ));
}

#[tokio::test]
async fn injected_and_truncated_records_fail() {
    // A well-formed but unsealed frame, as a v1 peer or an injector would send it.
    let mut w = wire();
    let plain = codec::encode(&ping(5));
    assert!(matches!(
        w.deliver(plain).await,
        Err(RecordError::Forged(0))
    ));
    // Shorter than a tag.
    let mut w = wire();
    assert!(matches!(
        w.deliver(Bytes::from_static(&[1, 2, 3])).await,
        Err(RecordError::Forged(0))
    ));
    // A record sealed under the other direction's key (reflection).
    let mut w = wire();
    let (a, _b) = tokio::io::duplex(1 << 10);
    let (r, wr) = framed(Box::new(a), 1 << 10);
    let (_, mut responder_writer) = SessionKeys::derive(&SHARED, &TRANSCRIPT, false).seal(r, wr);
    let reflected = responder_writer.seal(&ping(5)).unwrap();
    assert!(matches!(
        w.deliver(reflected).await,
        Err(RecordError::Forged(0))
    ));
}

#[test]
fn keys_depend_on_the_secret_the_transcript_and_the_direction() {
    let i = SessionKeys::derive(&SHARED, &TRANSCRIPT, true);
    let r = SessionKeys::derive(&SHARED, &TRANSCRIPT, false);
    assert_eq!(*i.send, *r.receive);
    assert_eq!(*i.receive, *r.send);
    assert_ne!(*i.send, *i.receive);
    let other_transcript = SessionKeys::derive(&SHARED, &[8; 32], true);
    assert_ne!(*other_transcript.send, *i.send);
    let other_secret = SessionKeys::derive(&[6; 32], &TRANSCRIPT, true);
    assert_ne!(*other_secret.send, *i.send);
}

#[test]
fn nonces_are_the_counter() {
    assert_eq!(nonce(0).as_slice(), &[0u8; 12]);
    assert_eq!(nonce(1)[11], 1);
    assert_eq!(nonce(u64::MAX)[..4], [0, 0, 0, 0]);
    assert_eq!(nonce(u64::MAX)[4..], [0xff; 8]);
}
