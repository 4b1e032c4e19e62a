//! The body of the `bus_request` fuzz target, kept here so unit tests can run
//! it over seed inputs: bytes as they arrive on the bus socket, split into
//! frames and decoded as requests, must never panic, and what decodes must
//! encode to a frame that decodes back to it.

use std::cell::RefCell;

use crate::{AdminOp, Pattern, Request, frame::read_frame};

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Decodes every frame in `data` (cap 4 KiB) as a `Request`, and every
/// request decoded back from its encoding.
pub fn bus_request(data: &[u8]) {
    RUNTIME.with(|cell| {
        let mut slot = cell.borrow_mut();
        let runtime = slot.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a current-thread runtime")
        });
        runtime.block_on(async {
            let mut input = data;
            while let Ok(body) = read_frame(&mut input, 4096).await {
                let Ok(request) = serde_json::from_slice::<Request>(&body) else {
                    continue;
                };
                // What decoded encodes to a frame that decodes again, the
                // same unless it holds free JSON (whose floats serde_json
                // may read back one ulp apart).
                let again: Request = serde_json::from_slice(&request.to_bytes())
                    .expect("an encoded request decodes");
                if !holds_free_json(&request) {
                    assert_eq!(again, request);
                }
                if let Request::Subscribe { patterns, .. } = request {
                    for pattern in patterns {
                        // What parsed must print and parse back the same.
                        assert_eq!(Pattern::parse(pattern.as_str()).ok(), Some(pattern));
                    }
                }
            }
        });
    });
}

/// Whether a request carries a payload of any JSON (`data`, a description).
fn holds_free_json(request: &Request) -> bool {
    matches!(
        request,
        Request::Publish { .. }
            | Request::Admin {
                op: AdminOp::PeerAdd { .. },
                ..
            }
    )
}
