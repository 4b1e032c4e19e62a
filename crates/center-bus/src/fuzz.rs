//! The body of the `bus_request` fuzz target, kept here so unit tests can run
//! it over seed inputs: bytes as they arrive on the bus socket, split into
//! frames and decoded as requests, must never panic.

use std::cell::RefCell;

use crate::{Pattern, Request, frame::read_frame};

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Decodes every frame in `data` (cap 4 KiB) as a `Request`.
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
                if let Ok(Request::Subscribe { patterns, .. }) =
                    serde_json::from_slice::<Request>(&body)
                {
                    for pattern in patterns {
                        // What parsed must print and parse back the same.
                        assert_eq!(Pattern::parse(pattern.as_str()).ok(), Some(pattern));
                    }
                }
            }
        });
    });
}
