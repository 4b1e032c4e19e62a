//! The client against a scripted broker on a real Unix socket: what it
//! sends for subscriptions and acknowledgements, what it hands out, and what
//! it sends again after a reconnect. No dispatchd is involved; the broker
//! here is a few lines that read requests and write replies in order.

use std::time::Duration;

use center_bus::{
    Client, ClientConfig, FeedPosition, Pattern, Publish, Reply, Request, Start,
    frame::{encode_frame, read_frame},
};
use serde_json::{Value, json};
use tokio::{
    io::AsyncWriteExt,
    net::{UnixListener, UnixStream},
};

const PEER: &str = "03b5cf1b-24be-4cc5-a6a5-7b40ad2c0f8c";
const ORIGIN: &str = "9762e948-070f-41b0-ab51-70fc4820064c";
/// CEP 2's longest lifetime, which a feed event's `exp` adds to its `iat`.
const THIRTY_DAYS_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// One accepted connection, seen from the broker's side.
struct Broker {
    stream: UnixStream,
}

impl Broker {
    /// Accepts a connection and answers its `hello` with a root `welcome`.
    async fn accept(listener: &UnixListener) -> Broker {
        let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("the client connects")
            .expect("accept");
        let mut broker = Broker { stream };
        let hello = broker.recv().await;
        assert!(matches!(hello, Request::Hello { .. }), "{hello:?}");
        broker
            .send(&Reply::Welcome {
                service: "test".to_owned(),
                uid: 0,
                pid: 1,
                peer: PEER.to_owned(),
                max_frame: 1 << 20,
                receive: vec![Pattern::parse("*").unwrap()],
                send: vec![Pattern::parse("*").unwrap()],
            })
            .await;
        broker
    }

    async fn recv(&mut self) -> Request {
        let body = tokio::time::timeout(
            Duration::from_secs(10),
            read_frame(&mut self.stream, 1 << 20),
        )
        .await
        .expect("a request in time")
        .expect("a frame");
        serde_json::from_slice(&body).expect("a request")
    }

    async fn send(&mut self, reply: &Reply) {
        let frame = encode_frame(&reply.to_bytes()).unwrap();
        self.stream.write_all(&frame).await.unwrap();
    }

    async fn ok(&mut self, id: u64) {
        self.send(&Reply::ok(id)).await;
    }

    /// Reads a `subscribe`, answers `ok`, and returns its patterns and start.
    async fn subscribed(&mut self) -> (Vec<String>, Start) {
        match self.recv().await {
            Request::Subscribe {
                id,
                patterns,
                start,
            } => {
                self.ok(id).await;
                (
                    patterns.iter().map(|p| p.as_str().to_owned()).collect(),
                    start,
                )
            }
            other => panic!("expected subscribe, got {other:?}"),
        }
    }

    async fn event(&mut self, name: &str, iat: u64, seq: Option<u64>, feed: Option<u64>) {
        self.send(&Reply::Event {
            event: envelope(name, iat),
            seq,
            feed: feed.map(|seq| FeedPosition {
                origin: ORIGIN.to_owned(),
                seq,
            }),
        })
        .await;
    }
}

/// A broadcast from `ORIGIN` as the broker shows a feed event: `exp` is
/// `iat` plus thirty days.
fn envelope(name: &str, iat: u64) -> Value {
    json!({
        "name": name,
        "meta": {"from": ORIGIN, "to": "*", "iat": iat, "exp": iat + THIRTY_DAYS_MS},
        "data": {},
    })
}

fn now_ms() -> u64 {
    center_bus::Timestamp::now().as_millis()
}

async fn client(socket: &std::path::Path) -> Client {
    Client::connect(ClientConfig {
        socket: socket.to_owned(),
        service: "test".to_owned(),
        reconnect_for: Some(Duration::from_secs(10)),
    })
    .await
    .expect("connect")
}

#[tokio::test]
async fn feed_events_are_acknowledged_and_subscriptions_replayed_with_their_start() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bus.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let script = async {
        let mut broker = Broker::accept(&listener).await;
        assert_eq!(
            broker.subscribed().await,
            (vec!["demo.*".to_owned()], Start::New)
        );
        assert_eq!(
            broker.subscribed().await,
            (vec!["other.x".to_owned()], Start::Oldest)
        );
        // A feed event long past its `exp` (catch-up), one issued an hour
        // ahead of our clock (the origin's claim), a kept direct message, a
        // plain local event.
        let year_ago = now_ms() - 365 * 24 * 60 * 60 * 1000;
        broker.event("demo.old", year_ago, None, Some(1)).await;
        broker
            .event("demo.ahead", now_ms() + 60 * 60 * 1000, None, Some(2))
            .await;
        broker.event("demo.direct", now_ms(), Some(7), None).await;
        broker.event("demo.local", now_ms(), None, None).await;
        // Each is acknowledged when the next is asked for, as what it is.
        let acks = [
            broker.recv().await,
            broker.recv().await,
            broker.recv().await,
        ];
        assert_eq!(
            acks,
            [
                Request::FeedAck {
                    origin: ORIGIN.to_owned(),
                    seq: 1
                },
                Request::FeedAck {
                    origin: ORIGIN.to_owned(),
                    seq: 2
                },
                Request::Ack { seq: 7 },
            ]
        );
        // The connection breaks; the client subscribes again, each
        // subscription with its own start, and the local event (which needs
        // no acknowledgement) is followed by a feed event on the new one.
        drop(broker);
        let mut broker = Broker::accept(&listener).await;
        assert_eq!(
            broker.subscribed().await,
            (vec!["demo.*".to_owned()], Start::New)
        );
        assert_eq!(
            broker.subscribed().await,
            (vec!["other.x".to_owned()], Start::Oldest)
        );
        broker.event("demo.again", now_ms(), None, Some(3)).await;
        // A publication says `local` only when it is.
        for want_local in [true, false] {
            match broker.recv().await {
                Request::Publish { id, local, to, .. } => {
                    assert_eq!((local, to), (want_local, None));
                    broker.ok(id).await;
                }
                other => panic!("expected publish, got {other:?}"),
            }
        }
        // `ack` sends what is pending.
        assert_eq!(
            broker.recv().await,
            Request::FeedAck {
                origin: ORIGIN.to_owned(),
                seq: 3
            }
        );
        broker
    };
    let run = async {
        let mut client = client(&socket).await;
        client
            .subscribe_with(vec![Pattern::parse("demo.*").unwrap()], Start::New)
            .await
            .unwrap();
        client
            .subscribe(vec![Pattern::parse("other.x").unwrap()])
            .await
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let delivery = client.next_delivery().await.unwrap();
            seen.push((
                delivery.envelope.name.as_str().to_owned(),
                delivery.feed.map(|f| (f.origin, f.seq)),
            ));
        }
        assert_eq!(
            seen,
            [
                ("demo.old".to_owned(), Some((ORIGIN.to_owned(), 1))),
                ("demo.ahead".to_owned(), Some((ORIGIN.to_owned(), 2))),
                ("demo.direct".to_owned(), None),
                ("demo.local".to_owned(), None),
            ]
        );
        let again = client.next_event().await.unwrap();
        assert_eq!(again.name.as_str(), "demo.again");
        for local in [true, false] {
            client
                .publish(Publish {
                    name: "demo.out".to_owned(),
                    data: json!({}),
                    to: None,
                    ttl: None,
                    local,
                })
                .await
                .unwrap();
        }
        client.ack().await;
        client
    };
    let (_broker, _client) = tokio::join!(script, run);
}
