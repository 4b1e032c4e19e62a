//! Runs the `peer_frame` fuzz target's body over every input of CEP 5's
//! vectors: the seed corpus, checked on every `cargo test`.

use center_proto::fuzz;
use center_proto::peer_frame::encode_frame;

use super::vectors;

#[test]
fn fuzz_target_holds_on_every_vector() {
    let vectors = vectors::load();
    let mut stream = Vec::new();
    for v in &vectors.valid {
        fuzz::peer_frame(v.body.as_bytes());
        fuzz::peer_frame(&encode_frame(v.body.as_bytes()).expect("vectors fit"));
        stream.extend(encode_frame(v.body.as_bytes()).expect("vectors fit"));
        if let Some(input) = &v.input {
            fuzz::peer_frame(input.as_bytes());
            fuzz::peer_frame(&encode_frame(input.as_bytes()).expect("vectors fit"));
        }
        fuzz::peer_frame(&v.payload);
    }
    for v in &vectors.invalid {
        fuzz::peer_frame(v.body.as_bytes());
        fuzz::peer_frame(&encode_frame(v.body.as_bytes()).expect("vectors fit"));
    }
    for v in &vectors.framing {
        fuzz::peer_frame(&v.stream);
    }
    // Every valid frame in one stream, split at each of 256 points.
    for first in 0..=u8::MAX {
        let mut data = stream.clone();
        if let Some(b) = data.first_mut() {
            *b = first;
        }
        fuzz::peer_frame(&data);
    }
}

#[test]
fn fuzz_target_holds_on_truncations_of_a_framed_vector() {
    let vectors = vectors::load();
    let v = vectors.valid.first().expect("there are valid vectors");
    let framed = encode_frame(v.body.as_bytes()).expect("vectors fit");
    for end in 0..framed.len() {
        fuzz::peer_frame(framed.get(..end).unwrap_or_default());
    }
    let body = v.body.as_bytes();
    for end in 0..body.len() {
        fuzz::peer_frame(body.get(..end).unwrap_or_default());
    }
}
