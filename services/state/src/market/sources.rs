//! Who may publish as a source: a registry of Ed25519 source keys (`[market.sources]`).
//!
//! Without a registry anyone who can publish could publish *as anyone*: cancel another source's
//! resting orders (a cancel names the order by its source and identifier), print quotes and
//! trades as another venue, or burn another source's sequence numbers (an ordered `(source,
//! sequence)` is consumed, so the real event carrying it would be skipped as a duplicate).
//!
//! With a registry, `market.sources` maps a *source name* to the Ed25519 public key of whoever
//! owns it. The name owns the source of the same name and every source `name:suffix` (a feed
//! names each of its runs `feed-r0:s1`, `feed-r0:s2`, … under the registered `feed-r0`). Every
//! event must carry, in `MarketEvent.signature`, the owner's signature over
//!
//! ```text
//! hash_parts(IDENTITY_SIGN, ["beat.state.v1.MarketEvent", protobuf(event with signature empty)])
//! ```
//!
//! ([`beat_crypto::identity`]; the protobuf encoding is the canonical one: fields in number
//! order, defaults omitted, no unknown fields). The check is stateless and deterministic, so the
//! same rule refuses an event at `Publish` (`INVALID_ARGUMENT`, field `signature`) and makes
//! every replica skip it if it is ordered anyway (submitted to consensus directly, or by a
//! faulty replica): `unknown_source`, `unsigned` or `bad_signature`. It runs *before* the
//! duplicate check, so a forged event consumes nothing of its source's.
//!
//! The registry is part of [`super::MarketParams`], hence of the genesis hash: replicas with
//! different registries disagree from the first state hash on.
//!
//! An empty registry is an **open market**: signatures are neither required nor checked (for
//! local development; the state service says so in its log at start).

use std::collections::BTreeMap;

use beat_crypto::identity::{IdentityKeypair, IdentityPublicKey, IdentitySignature};
use beat_proto::state::v1 as pb;
use prost::Message as _;

use super::event::{RejectReason, Rejection, is_valid_source};

/// The signing context of market events.
pub const CONTEXT: &[u8] = b"beat.state.v1.MarketEvent";

/// The bytes a source signs for `event`: its canonical protobuf encoding with the signature
/// field empty.
pub fn signed_bytes(event: &pb::MarketEvent) -> Vec<u8> {
    if event.signature.is_empty() {
        event.encode_to_vec()
    } else {
        pb::MarketEvent {
            signature: Default::default(),
            ..event.clone()
        }
        .encode_to_vec()
    }
}

/// Signs `event` as `key` (replacing any signature it has).
pub fn sign(event: &mut pb::MarketEvent, key: &IdentityKeypair) {
    event.signature = Default::default();
    let signature = key.sign(CONTEXT, &event.encode_to_vec());
    event.signature = signature.to_bytes().to_vec().into();
}

/// The registered source owning `source`: the whole name, or the part before its first `:`.
pub fn owner_name(source: &str) -> &str {
    source.split_once(':').map_or(source, |(name, _)| name)
}

/// Checks a name for the registry: a source name without `:`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if !is_valid_source(name) || name.contains(':') {
        return Err(format!(
            "market.sources: {name:?} is not a source name (1-64 characters from \
             [A-Za-z0-9._-]; ':' separates a registered name from a run suffix)"
        ));
    }
    Ok(())
}

/// Checks the registry itself ([`validate_name`] for every name).
pub fn validate(sources: &BTreeMap<String, IdentityPublicKey>) -> Result<(), String> {
    sources.keys().try_for_each(|name| validate_name(name))
}

const fn reject(reason: RejectReason, problem: &'static str) -> Rejection {
    Rejection {
        reason,
        field: "signature",
        problem,
    }
}

/// Checks that `event` is signed by the owner of its source (always true in an open market).
pub fn check(
    sources: &BTreeMap<String, IdentityPublicKey>,
    event: &pb::MarketEvent,
) -> Result<(), Rejection> {
    if sources.is_empty() {
        return Ok(());
    }
    let Some(owner) = sources.get(owner_name(&event.source)) else {
        return Err(reject(
            RejectReason::UnknownSource,
            "the source is not registered in market.sources",
        ));
    };
    if event.signature.is_empty() {
        return Err(reject(
            RejectReason::Unsigned,
            "the event must be signed by its source's registered key",
        ));
    }
    let signature = <&[u8; 64]>::try_from(event.signature.as_ref())
        .ok()
        .and_then(|bytes| IdentitySignature::from_bytes(bytes).ok())
        .ok_or(reject(
            RejectReason::BadSignature,
            "not a 64-byte Ed25519 signature",
        ))?;
    owner
        .verify(CONTEXT, &signed_bytes(event), &signature)
        .map_err(|_| {
            reject(
                RejectReason::BadSignature,
                "does not verify under the source's registered key",
            )
        })
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng as _;

    use super::*;

    fn event(source: &str) -> pb::MarketEvent {
        pb::MarketEvent {
            source: source.to_owned(),
            sequence: 7,
            event: Some(pb::market_event::Event::Cancel(pb::CancelOrder {
                order_id: "o-1".to_owned(),
            })),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_owner_of_a_source_signs_for_it() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let venue = IdentityKeypair::generate(&mut rng);
        let thief = IdentityKeypair::generate(&mut rng);
        let sources = BTreeMap::from([("venue".to_owned(), venue.public())]);
        let reason = |e: &pb::MarketEvent| check(&sources, e).err().map(|r| r.reason);

        let mut ok = event("venue");
        sign(&mut ok, &venue);
        assert_eq!(reason(&ok), None);
        let mut run = event("venue:run-2");
        sign(&mut run, &venue);
        assert_eq!(reason(&run), None, "a run suffix is the owner's too");

        assert_eq!(reason(&event("venue")), Some(RejectReason::Unsigned));
        let mut forged = event("venue");
        sign(&mut forged, &thief);
        assert_eq!(reason(&forged), Some(RejectReason::BadSignature));
        let mut stranger = event("thief");
        sign(&mut stranger, &thief);
        assert_eq!(reason(&stranger), Some(RejectReason::UnknownSource));
        let mut lookalike = event("venue2");
        sign(&mut lookalike, &venue);
        assert_eq!(reason(&lookalike), Some(RejectReason::UnknownSource));

        // A signed event altered afterwards: another sequence (burning a number), another
        // order, another source.
        let mut resequenced = ok.clone();
        resequenced.sequence += 1;
        assert_eq!(reason(&resequenced), Some(RejectReason::BadSignature));
        let mut retargeted = ok.clone();
        retargeted.event = event("x").event.map(|e| match e {
            pb::market_event::Event::Cancel(_) => {
                pb::market_event::Event::Cancel(pb::CancelOrder {
                    order_id: "o-2".to_owned(),
                })
            }
            other => other,
        });
        assert_eq!(reason(&retargeted), Some(RejectReason::BadSignature));
        let mut truncated = ok.clone();
        truncated.signature = truncated.signature.slice(..63);
        assert_eq!(reason(&truncated), Some(RejectReason::BadSignature));

        // An open market checks nothing.
        assert!(check(&BTreeMap::new(), &event("anyone")).is_ok());
    }

    #[test]
    fn registry_names_are_source_names_without_a_colon() {
        let key = IdentityKeypair::generate(&mut ChaCha20Rng::seed_from_u64(2)).public();
        assert!(validate(&BTreeMap::from([("feed-r0".to_owned(), key)])).is_ok());
        for bad in ["", "a:b", "sp ace", &"x".repeat(65)] {
            assert!(
                validate(&BTreeMap::from([(bad.to_owned(), key)])).is_err(),
                "{bad:?}"
            );
        }
    }
}
