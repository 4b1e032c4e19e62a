//! An example service: subscribes to `demo.*` and answers every event with a
//! `demo-echo.reply` carrying what it saw. Run it against a test network:
//!
//! ```sh
//! cargo run -p center-bus --example echo -- /tmp/net/alpha/run/bus.sock
//! centerctl --config /tmp/net/alpha/center.toml bus publish demo.ping --data '{"n":1}'
//! ```
//!
//! As a non-root account it needs a grant first:
//! `centerctl service approve demo-echo --user ACCOUNT --receive 'demo.*' --send 'demo-echo.*'`.

use std::path::PathBuf;

use center_bus::{Client, ClientConfig, Pattern, Publish};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let socket = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("/run/center/bus.sock"), PathBuf::from);
    // `reconnect_for: None`: a daemon waits for dispatchd forever, across restarts.
    let config = ClientConfig {
        socket,
        service: "demo-echo".to_owned(),
        reconnect_for: None,
    };
    let mut client = Client::connect(config).await?;
    client.subscribe(vec![Pattern::parse("demo.*")?]).await?;
    eprintln!("demo-echo: listening on peer {}", client.welcome().peer);
    loop {
        let event = client.next_event().await?;
        let reply = json!({ "echo": event.name.as_str(), "from": event.meta.from.to_string(), "data": event.data });
        client
            .publish(Publish {
                name: "demo-echo.reply".to_owned(),
                data: reply,
                to: None,
                ttl: None,
                // A reply for whoever listens now, not shared state: kept
                // off the feeds.
                local: true,
            })
            .await?;
    }
}
