//! The local bus end to end: grants checked against the kernel's uid, slow
//! subscribers cut off, hostile frames refused, clients surviving a kill -9
//! of dispatchd.

use std::{
    os::unix::process::CommandExt,
    time::{Duration, Instant},
};

use center_bus::{Pattern, Publish};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::support::{
    PATIENCE, Raw, STRANGER, Tail, approve, bus_client, ctl, ctl_as, network, ok, publish, refused,
    rss_kib,
};

#[test]
fn events_published_reach_subscribers_of_that_bus() {
    let (_dir, net) = network(1);
    let alpha = net.peer("alpha").unwrap();
    let tail = Tail::start(&net, alpha, None, &["demo.*", "--count", "2"]);
    publish(&net, alpha, "other.thing", r#"{"skip":true}"#);
    publish(&net, alpha, "demo.hello", r#"{"n":1}"#);
    publish(&net, alpha, "demo.hello", r#"{"n":2,"text":"é\n"}"#);
    let first = tail.next();
    assert_eq!(first["name"], "demo.hello");
    assert_eq!(first["data"], json!({"n": 1}));
    assert_eq!(first["meta"]["from"], alpha.uuid.to_string());
    assert_eq!(first["meta"]["to"], "*");
    assert_eq!(tail.next()["data"], json!({"n": 2, "text": "é\n"}));
    assert_eq!(tail.wait(), Some(0));
}

#[test]
fn unapproved_uid_is_refused_on_subscribe_and_publish() {
    let (_dir, net) = network(1);
    let alpha = net.peer("alpha").unwrap();
    let err = refused(ctl_as(
        &net,
        alpha,
        STRANGER,
        &["bus", "tail", "*", "--service", "probe"],
    ));
    assert!(
        err.contains("service `probe` is not approved on this peer for uid 60001"),
        "{err}"
    );
    assert!(err.contains("(not-approved)"), "{err}");
    let err = refused(ctl_as(
        &net,
        alpha,
        STRANGER,
        &["bus", "publish", "demo.x", "--local", "--service", "probe"],
    ));
    assert!(
        err.contains("service `probe` is not approved on this peer for uid 60001"),
        "{err}"
    );
    // Root's own service name is not borrowed by another uid either.
    let err = refused(ctl_as(
        &net,
        alpha,
        STRANGER,
        &["bus", "publish", "demo.x", "--local"],
    ));
    assert!(
        err.contains("service `centerctl` is not approved on this peer for uid 60001"),
        "{err}"
    );
    // Nor can another uid manage grants.
    approve(&net, alpha, "probe", 60001, "demo.*", "demo.*");
    approve(&net, alpha, "centerctl", 60001, "x", "x");
    let err = refused(ctl_as(&net, alpha, STRANGER, &["service", "list"]));
    assert!(
        err.contains("only root may manage grants and the roster (this is uid 60001)"),
        "{err}"
    );
    assert!(err.contains("(not-root)"), "{err}");
    let log = std::fs::read_to_string(alpha.log_dir.join("dispatchd.log")).unwrap();
    assert!(
        log.contains("bus hello refused") && log.contains("uid=60001"),
        "refusals are logged: {log}"
    );
}

#[test]
fn approved_service_receives_and_sends_only_within_its_grant() {
    let (_dir, net) = network(1);
    let alpha = net.peer("alpha").unwrap();
    approve(&net, alpha, "probe", 60001, "demo.*", "probe.out");
    let listing: serde_json::Value =
        serde_json::from_str(&ok(ctl(&net, alpha, &["--json", "service", "list"]))).unwrap();
    // The test network approved peerd too.
    let probe: Vec<&serde_json::Value> = listing["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["service"] != "peerd")
        .collect();
    assert_eq!(
        probe,
        [&json!({"service": "probe", "uid": 60001, "receive": ["demo.*"], "send": ["probe.out"]})]
    );
    // Subscribing beyond the grant is refused with what is missing.
    let err = refused(ctl_as(
        &net,
        alpha,
        STRANGER,
        &["bus", "tail", "*", "--service", "probe"],
    ));
    assert!(
        err.contains(
            "service `probe` may not receive `*`: its grant allows only [demo.*] (out-of-grant)"
        ),
        "{err}"
    );
    // Within it, only granted names arrive.
    let tail = Tail::start(
        &net,
        alpha,
        Some(STRANGER),
        &["demo.*", "--service", "probe", "--count", "1"],
    );
    publish(&net, alpha, "secret.thing", "{}");
    publish(&net, alpha, "demo.visible", "{}");
    assert_eq!(tail.next()["name"], "demo.visible");
    assert_eq!(tail.wait(), Some(0));
    // Sending: granted name ok, anything else refused.
    let root_tail = Tail::start(&net, alpha, None, &["probe.*", "--count", "1"]);
    ok(ctl_as(
        &net,
        alpha,
        STRANGER,
        &[
            "bus",
            "publish",
            "probe.out",
            "--local",
            "--service",
            "probe",
        ],
    ));
    assert_eq!(root_tail.next()["name"], "probe.out");
    let err = refused(ctl_as(
        &net,
        alpha,
        STRANGER,
        &[
            "bus",
            "publish",
            "demo.forged",
            "--local",
            "--service",
            "probe",
        ],
    ));
    assert!(
        err.contains(
            "may not send `demo.forged`: the grant allows only [probe.out] (out-of-grant)"
        ),
        "{err}"
    );
    // Revoking closes the door.
    ok(ctl(&net, alpha, &["service", "revoke", "probe"]));
    let err = refused(ctl_as(
        &net,
        alpha,
        STRANGER,
        &[
            "bus",
            "publish",
            "probe.out",
            "--local",
            "--service",
            "probe",
        ],
    ));
    assert!(err.contains("not approved"), "{err}");
}

#[test]
fn a_subscriber_that_stops_reading_is_disconnected_and_memory_stays_bounded() {
    let (_dir, net) = network(1);
    let alpha = net.peer("alpha").unwrap();
    let pid = net.daemon_pid(alpha, "dispatchd").unwrap();
    // A subscriber that never reads.
    let (mut stalled, _) = Raw::hello(alpha, "stalled");
    stalled.send(&json!({"type": "subscribe", "id": 1, "patterns": ["load.*"]}));
    assert_eq!(stalled.recv().unwrap()["type"], "ok");
    // A healthy one that keeps reading.
    let healthy = Tail::start(&net, alpha, None, &["load.end", "--count", "1"]);
    let before = rss_kib(pid);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let payload = "x".repeat(4096);
    runtime.block_on(async {
        let mut client = bus_client(alpha, "e2e", PATIENCE).await;
        // 20,000 × 4 KiB = 80 MiB: were it queued, the broker would show it.
        for n in 0..20_000u32 {
            let publish = Publish {
                name: "load.data".into(),
                data: json!({"n": n, "pad": payload}),
                to: None,
                ttl: None,
                local: true,
            };
            client.publish(publish).await.unwrap();
        }
        client
            .publish(Publish {
                name: "load.end".into(),
                data: json!({}),
                to: None,
                ttl: None,
                local: true,
            })
            .await
            .unwrap();
    });
    let after = rss_kib(pid);
    assert!(
        after < before + 32 * 1024,
        "dispatchd grew from {before} KiB to {after} KiB"
    );
    assert_eq!(
        healthy.next()["name"],
        "load.end",
        "others keep being served"
    );
    // The stalled one finds its queue, then the reason, then the end.
    let mut last = None;
    let mut events = 0;
    while let Some(frame) = stalled.recv() {
        if frame["type"] == "event" {
            events += 1;
        }
        last = Some(frame);
    }
    assert!(
        events < 20_000,
        "the stalled subscriber was cut off ({events} events)"
    );
    // The reason is the last frame when the client reads in time to get it;
    // a client stalled for good just sees the end (the log says why).
    let last = last.unwrap();
    assert!(
        last["type"] == "event" || last["code"] == "queue-full",
        "{last}"
    );
    let log = std::fs::read_to_string(alpha.log_dir.join("dispatchd.log")).unwrap();
    assert!(log.contains("slow subscriber disconnected"), "{log}");
}

#[test]
fn hostile_frames_are_refused_and_the_broker_keeps_serving() {
    let (_dir, net) = network(1);
    let alpha = net.peer("alpha").unwrap();
    let watcher = Tail::start(&net, alpha, None, &["still.*", "--count", "1"]);

    // Garbage before hello: error frame, closed.
    let mut raw = Raw::connect(alpha);
    raw.send_bytes(b"\x00garbage{");
    let reply = raw.recv().unwrap();
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("malformed")),
        "{reply}"
    );
    assert!(raw.recv().is_none());

    // Something other than hello first.
    let mut raw = Raw::connect(alpha);
    raw.send(&json!({"type": "subscribe", "id": 1, "patterns": ["*"]}));
    assert_eq!(raw.recv().unwrap()["code"], "protocol");

    // Malformed JSON after hello: an error frame naming the request, and the connection lives on.
    let (mut raw, _) = Raw::hello(alpha, "raw");
    raw.send_bytes(br#"{"type":"publish","id":7,"name":"x""#);
    let reply = raw.recv().unwrap();
    assert_eq!(reply["code"], "malformed", "{reply}");
    raw.send(&json!({"type": "publish", "id": 8, "name": "Bad Name", "data": {}, "local": true}));
    let reply = raw.recv().unwrap();
    assert_eq!(
        (reply["id"].as_u64(), reply["code"].as_str()),
        (Some(8), Some("bad-event")),
        "{reply}"
    );
    raw.send(&json!({"type": "publish", "id": 9, "name": "still.ok", "data": [1], "local": true}));
    assert_eq!(raw.recv().unwrap()["code"], "bad-event");
    raw.send(&json!({"type": "hello", "service": "again", "protocol": 1}));
    assert_eq!(raw.recv().unwrap()["code"], "protocol");

    // Oversize: refused before the body is read, then closed.
    let (mut raw, _) = Raw::hello(alpha, "raw");
    raw.stream.write_all_prefix(u32::MAX);
    let reply = raw.recv().unwrap();
    assert_eq!(reply["code"], "oversize", "{reply}");
    assert!(raw.recv().is_none());

    // Truncated: half a frame, then the client hangs up.
    let (mut raw, _) = Raw::hello(alpha, "raw");
    raw.stream.write_all_prefix(100);
    std::io::Write::write_all(&mut raw.stream, b"{\"type\":").unwrap();
    drop(raw);

    // A wrong protocol version.
    let mut raw = Raw::connect(alpha);
    raw.send(&json!({"type": "hello", "service": "old", "protocol": 99}));
    assert_eq!(raw.recv().unwrap()["code"], "protocol");

    // An array is not a frame, even if serde could read it as one.
    let (mut raw, _) = Raw::hello(alpha, "raw");
    raw.send(&json!(["subscribe", 1, ["*"]]));
    assert_eq!(raw.recv().unwrap()["code"], "malformed");
    // Duplicate keys are ambiguous: refused, not collapsed.
    raw.send_bytes(
        br#"{"type":"publish","id":3,"name":"still.dup","data":{"a":1,"a":2},"local":true}"#,
    );
    let reply = raw.recv().unwrap();
    assert_eq!(reply["code"], "malformed", "{reply}");
    // "*" is the broadcast destination, as in the envelope: like no "to",
    // a feed event.
    raw.send(&json!({"type": "publish", "id": 4, "name": "dup.ok", "data": {}, "to": "*"}));
    assert_eq!(raw.recv().unwrap()["type"], "ok");

    // A line break in client text cannot forge a log line.
    let mut raw = Raw::connect(alpha);
    raw.send(&json!({"type": "hello", "service": "x\nFORGED-LOG-LINE", "protocol": 1}));
    assert_eq!(raw.recv().unwrap()["code"], "malformed");

    // After all that, the broker still serves.
    publish(&net, alpha, "still.alive", "{}");
    assert_eq!(watcher.next()["name"], "still.alive");
    let log = std::fs::read_to_string(alpha.log_dir.join("dispatchd.log")).unwrap();
    assert!(
        log.contains("frame of 4294967295 bytes is over the 1048576-byte limit"),
        "{log}"
    );
    assert!(
        log.contains("connection closed in the middle of a frame"),
        "{log}"
    );
}

#[test]
fn clients_reconnect_after_dispatchd_is_killed() {
    let (_dir, net) = network(1);
    let alpha = net.peer("alpha").unwrap();
    let tail = Tail::start(&net, alpha, None, &["after.*", "--count", "1"]);
    net.signal_daemon(alpha, "dispatchd", Signal::SIGKILL)
        .unwrap();
    net.start_daemon(alpha, "dispatchd").unwrap();
    // The tail re-subscribes by itself; we cannot see when, so publish until
    // the event shows up (its arrival is the signal), within the deadline.
    let deadline = Instant::now() + PATIENCE;
    let event = loop {
        publish(&net, alpha, "after.restart", "{}");
        if let Some(event) = tail.next_within(Duration::from_millis(250)) {
            break event;
        }
        assert!(Instant::now() < deadline, "tail did not reconnect");
    };
    assert_eq!(event["name"], "after.restart");
    assert_eq!(tail.wait(), Some(0));

    // The library client too: subscribe, kill, restart, receive.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut subscriber = bus_client(alpha, "e2e", PATIENCE).await;
        subscriber
            .subscribe(vec![Pattern::parse("lib.*").unwrap()])
            .await
            .unwrap();
        net.signal_daemon(alpha, "dispatchd", Signal::SIGKILL)
            .unwrap();
        net.start_daemon(alpha, "dispatchd").unwrap();
        let mut publisher = bus_client(alpha, "e2e", PATIENCE).await;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let publish = Publish {
                name: "lib.back".into(),
                data: json!({}),
                to: None,
                ttl: None,
                local: true,
            };
            publisher.publish(publish).await.unwrap();
            match tokio::time::timeout(Duration::from_millis(250), subscriber.next_event()).await {
                Ok(event) => {
                    assert_eq!(event.unwrap().name.as_str(), "lib.back");
                    break;
                }
                Err(_) => assert!(
                    Instant::now() < deadline,
                    "library client did not reconnect"
                ),
            }
        }
    });
}

/// Writes a bare length prefix (for oversize and truncated frames).
trait WritePrefix {
    fn write_all_prefix(&mut self, len: u32);
}

impl WritePrefix for std::os::unix::net::UnixStream {
    fn write_all_prefix(&mut self, len: u32) {
        std::io::Write::write_all(self, &len.to_be_bytes()).unwrap();
    }
}

/// One local user cannot take every bus slot: past its share, its next
/// connection is refused with a reason, and root still connects.
#[test]
fn one_uid_holds_a_bounded_share_of_the_bus() {
    let (_dir, net) = network(1);
    let alpha = net.peer("alpha").unwrap();
    let share = dispatchd::bus::conn::MAX_PER_UID;
    // As STRANGER: `share` connections held open, then one more, whose
    // first frame is printed.
    let script = "import socket,struct,sys\n\
        held=[]\n\
        for _ in range(int(sys.argv[2])):\n\
        \x20   s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); held.append(s)\n\
        s=socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])\n\
        n=struct.unpack('>I', s.recv(4))[0]\n\
        print(s.recv(n).decode())\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&alpha.bus_socket)
        .arg(share.to_string())
        .uid(STRANGER)
        .gid(STRANGER)
        .output()
        .expect("python3 opens connections as another user");
    let answer = ok(out);
    assert!(answer.contains("too-many-connections"), "{answer}");
    assert!(
        answer.contains(&format!("holds {share} bus connections")),
        "{answer}"
    );
    // Root is not counted against anyone's share.
    let (_raw, welcome) = Raw::hello(alpha, "root-still");
    assert_eq!(welcome["type"], "welcome");
}
