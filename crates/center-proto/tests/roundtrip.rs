//! Property tests: every valid envelope survives canonical bytes -> parse
//! unchanged, and canonical encoding is idempotent and agrees with plain
//! serde_json on what the bytes mean.

use std::time::Duration;

use center_proto::canonical::MAX_SAFE_INTEGER;
use center_proto::{
    Destination, Envelope, EventName, Limits, Meta, PeerId, Timestamp, fuzz, parse_canonical_value,
    to_canonical,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).expect("limits fit in u64")
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{0,6}",
        // Control characters, escapes, non-ASCII and astral-plane characters.
        "[\\x00-\\x20\"\\\\/a\u{7f}\u{e9}\u{2028}\u{ff71}\u{1f600}]{0,4}",
        any::<String>(),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).prop_map(Value::from),
        prop_oneof![Just(MAX_SAFE_INTEGER), Just(-MAX_SAFE_INTEGER), Just(0)].prop_map(Value::from),
        key().prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 64, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn data() -> impl Strategy<Value = Value> {
    btree_map(key(), json(), 0..6).prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

fn envelope() -> impl Strategy<Value = Envelope> {
    let now = fuzz::NOW.as_millis();
    let skew = millis(Limits::DEFAULT.max_skew);
    let lifetime = millis(Limits::DEFAULT.max_lifetime);
    let name = "[a-z][a-z0-9]{0,8}([.-][a-z0-9]{1,4}){0,4}"
        .prop_map(|s| EventName::parse(&s).expect("the strategy follows the grammar"));
    let peer = any::<u128>().prop_map(|n| PeerId::from(uuid_from(n)));
    let to = prop_oneof![
        Just(Destination::Broadcast),
        peer.clone().prop_map(Destination::Peer)
    ];
    (name, peer, to, 0..=now + skew, 0..=lifetime, data()).prop_map(
        |(name, from, to, iat, life, data)| Envelope {
            name,
            meta: Meta {
                from,
                to,
                iat: Timestamp::from_millis(iat),
                exp: Timestamp::from_millis(iat + life),
            },
            data,
        },
    )
}

fn uuid_from(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

proptest! {
    #[test]
    fn envelopes_round_trip_through_canonical_bytes(envelope in envelope()) {
        let bytes = envelope.canonical_bytes().expect("generated data is canonical");
        let parsed = Envelope::parse(&bytes, fuzz::NOW, &Limits::DEFAULT);
        prop_assert_eq!(parsed.as_ref(), Ok(&envelope));
        let again = parsed.expect("checked above").canonical_bytes();
        prop_assert_eq!(again.as_ref(), Ok(&bytes));
    }

    #[test]
    fn canonical_bytes_mean_the_same_to_serde_json(value in json()) {
        let bytes = to_canonical(&value).expect("generated values are canonical");
        let plain: Value = serde_json::from_slice(&bytes).expect("canonical json is json");
        prop_assert_eq!(&plain, &value);
        let strict = parse_canonical_value(&bytes);
        prop_assert_eq!(strict.as_ref(), Ok(&value));
        // Re-encoding what serde_json itself printed gives the canonical bytes.
        let printed = serde_json::to_vec_pretty(&value).expect("values print");
        let reparsed = parse_canonical_value(&printed).expect("pretty json is accepted");
        prop_assert_eq!(to_canonical(&reparsed), Ok(bytes));
    }

    #[test]
    fn peer_ids_round_trip(n in any::<u128>()) {
        let id = PeerId::from(uuid_from(n));
        prop_assert_eq!(id.to_string().parse::<PeerId>(), Ok(id));
    }

    #[test]
    fn fuzz_target_holds_on_mutated_envelopes(
        envelope in envelope(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = envelope.canonical_bytes().expect("generated data is canonical");
        let i = at.index(bytes.len());
        if let Some(b) = bytes.get_mut(i) {
            *b = byte;
        }
        fuzz::envelope(&bytes);
    }

    #[test]
    fn fuzz_target_holds_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..256)) {
        fuzz::envelope(&bytes);
    }
}
