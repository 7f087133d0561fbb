//! The backplane seam with a recording backplane: which interest is reported, what is
//! forwarded, that injected messages are delivered locally and never forwarded again, and
//! that a refusal refuses the SEND visibly.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stompbox_broker::{
    Access, Backplane, BackplaneUnavailable, Broker, HeldQueue, Interest, PermissionRule,
    Permissions, Relayed, SendError, Target,
};
use stompbox_codec::{Command, Headers};
use stompbox_test_support::{TestClient, frames};

const QUIET: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Recorder {
    interest: Mutex<Vec<(Interest, bool)>>,
    forwarded: Mutex<Vec<Target>>,
    refuse: AtomicBool,
}

impl Backplane for Recorder {
    fn interest(&self, interest: Interest, present: bool) {
        self.interest.lock().unwrap().push((interest, present));
    }
    fn forward(&self, message: Relayed) -> Result<(), BackplaneUnavailable> {
        if self.refuse.load(Relaxed) {
            return Err(BackplaneUnavailable {
                reason: "buffer full".into(),
            });
        }
        self.forwarded.lock().unwrap().push(message.target);
        Ok(())
    }
}

fn node() -> (Broker, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let broker = Broker::builder()
        .backplane(recorder.clone())
        .build()
        .unwrap();
    (broker, recorder)
}

fn topic(pattern: &str) -> Interest {
    Interest::Topic(pattern.into())
}

#[tokio::test]
async fn interest_is_reported_on_the_first_subscriber_and_after_the_last() {
    let (broker, rec) = node();
    let mut a = TestClient::connect(&broker).await;
    let mut b = TestClient::connect(&broker).await;
    a.subscribe("0", "/topic/x.*").await;
    b.subscribe("0", "/topic/x.*").await;
    b.subscribe("1", "/topic/x.y").await;
    a.send_with_receipt(frames::unsubscribe("0"), "u").await;
    assert_eq!(
        *rec.interest.lock().unwrap(),
        [(topic("x.*"), true), (topic("x.y"), true)]
    );
    b.disconnect().await;
    let reported = rec.interest.lock().unwrap().clone();
    assert_eq!(reported.len(), 4);
    assert!(reported[2..].contains(&(topic("x.*"), false)));
    assert!(reported[2..].contains(&(topic("x.y"), false)));
    a.disconnect().await;
    assert_eq!(rec.interest.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn named_users_are_reported_once_anonymous_sessions_never() {
    let (broker, rec) = node();
    let login = frames::connect().with_header("login", "alice");
    let (mut a1, _) = TestClient::connect_with(&broker, login.clone()).await;
    let (mut a2, _) = TestClient::connect_with(&broker, login).await;
    let mut anon = TestClient::connect(&broker).await;
    a1.subscribe("0", "/user/queue/n").await;
    a2.subscribe("0", "/user/queue/n").await;
    anon.subscribe("0", "/user/queue/n").await;
    a1.disconnect().await;
    a2.disconnect().await;
    let alice = Interest::User("alice".into());
    assert_eq!(
        *rec.interest.lock().unwrap(),
        [(alice.clone(), true), (alice, false)]
    );
}

#[tokio::test]
async fn publishes_and_user_sends_are_forwarded_injected_ones_are_not() {
    let (broker, rec) = node();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe("0", "/topic/a.b").await;
    c.send_frame(frames::send("/topic/a.b", "local")).await;
    assert_eq!(&c.expect_message().await.body[..], b"local");
    broker.send_to_user("bob", "/queue/n", "hi").unwrap();
    let relayed = Relayed {
        target: Target::Topic("a.b".into()),
        headers: Headers::new(),
        body: "remote".into(),
    };
    assert_eq!(broker.inject(relayed), 1);
    let m = c.expect_message().await;
    assert_eq!(&m.body[..], b"remote");
    assert_eq!(m.header("destination"), Some("/topic/a.b"));
    c.expect_no_frame(QUIET).await;
    assert_eq!(
        *rec.forwarded.lock().unwrap(),
        [
            Target::Topic("a.b".into()),
            Target::User {
                user: "bob".into(),
                destination: "/queue/n".into()
            }
        ]
    );
}

#[tokio::test]
async fn a_refused_forward_refuses_the_send_and_delivers_nothing() {
    let (broker, rec) = node();
    let mut sub = TestClient::connect(&broker).await;
    sub.subscribe("0", "/topic/a").await;
    rec.refuse.store(true, Relaxed);
    assert!(matches!(
        broker.send("/topic/a", "x"),
        Err(SendError::RelayUnavailable(_))
    ));
    let mut publisher = TestClient::connect(&broker).await;
    publisher
        .send_frame(frames::send("/topic/a", "x").with_header("receipt", "r"))
        .await;
    let error = publisher.expect_frame(Command::Error).await;
    assert_eq!(error.header("message"), Some("relay unavailable"));
    assert_eq!(error.header("receipt-id"), Some("r"));
    sub.expect_no_frame(QUIET).await;
}

/// A client's SEND to another user goes the same way as a topic SEND: refused by the backplane,
/// it is an ERROR naming what the client wrote, and nobody gets it.
#[tokio::test]
async fn a_refused_client_user_send_is_an_error_and_delivers_nothing() {
    let rec = Arc::new(Recorder::default());
    let broker = Broker::builder()
        .backplane(rec.clone())
        .permissions(
            Permissions::new(vec![PermissionRule::allow(
                &[Access::Send, Access::Subscribe],
                ["#"],
            )])
            .unwrap(),
        )
        .build()
        .unwrap();
    let login = frames::connect().with_header("login", "bob");
    let (mut bob, _) = TestClient::connect_with(&broker, login).await;
    bob.subscribe("0", "/user/queue/n").await;
    rec.refuse.store(true, Relaxed);
    let mut alice = TestClient::connect(&broker).await;
    alice
        .send_frame(frames::send("/user/bob/queue/n", "x").with_header("receipt", "r"))
        .await;
    let error = alice.expect_error("relay unavailable").await;
    assert_eq!(error.header("receipt-id"), Some("r"));
    let body = String::from_utf8_lossy(&error.body).into_owned();
    assert!(body.starts_with("/user/bob/queue/n: "), "{body}");
    bob.expect_no_frame(QUIET).await;
    assert_eq!(broker.stats().messages_delivered, 0);
}

/// One `queue_settle` call: session, subscription, tags, ack.
type Settled = (u64, String, Vec<u64>, bool);

/// A backplane holding the queues: records the queue calls, keeps the sinks.
#[derive(Default)]
struct QueueHolder {
    forwarded: Mutex<Vec<Target>>,
    consumers: Mutex<Vec<stompbox_broker::QueueConsumer>>,
    settled: Mutex<Vec<Settled>>,
    unsubscribed: Mutex<Vec<(u64, String)>>,
    removed: Mutex<Vec<HeldQueue>>,
    interest: Mutex<Vec<(Interest, bool)>>,
}

impl Backplane for QueueHolder {
    fn interest(&self, interest: Interest, present: bool) {
        self.interest.lock().unwrap().push((interest, present));
    }
    fn forward(&self, message: Relayed) -> Result<(), BackplaneUnavailable> {
        self.forwarded.lock().unwrap().push(message.target);
        Ok(())
    }
    fn handles_queues(&self) -> bool {
        true
    }
    fn queue_subscribe(
        &self,
        consumer: stompbox_broker::QueueConsumer,
    ) -> Result<(), BackplaneUnavailable> {
        self.consumers.lock().unwrap().push(consumer);
        Ok(())
    }
    fn queue_remove(&self, queue: HeldQueue) {
        self.removed.lock().unwrap().push(queue);
    }
    fn queue_unsubscribe(&self, session: u64, subscription: &str) {
        let entry = (session, subscription.to_owned());
        self.unsubscribed.lock().unwrap().push(entry);
    }
    fn queue_settle(&self, session: u64, subscription: &str, tags: &[u64], ack: bool) {
        let entry = (session, subscription.to_owned(), tags.to_vec(), ack);
        self.settled.lock().unwrap().push(entry);
    }
}

#[tokio::test]
async fn queues_held_by_the_backplane_deliver_through_the_sink_and_settle_there() {
    let holder = Arc::new(QueueHolder::default());
    let broker = Broker::builder().backplane(holder.clone()).build().unwrap();
    let mut c = TestClient::connect(&broker).await;
    c.subscribe_with(
        frames::subscribe_ack("w", "/queue/jobs", "client-individual")
            .with_header("prefetch-count", "7"),
    )
    .await;
    c.send_with_receipt(frames::send("/queue/jobs", "x"), "s")
        .await;
    assert_eq!(
        *holder.forwarded.lock().unwrap(),
        [Target::Queue("jobs".into())]
    );
    assert_eq!(broker.queue_stats("/queue/jobs"), None, "no local queue");
    let tag = {
        let consumers = holder.consumers.lock().unwrap();
        let consumer = &consumers[0];
        assert_eq!(
            (
                &consumer.queue,
                consumer.subscription.as_str(),
                consumer.prefetch
            ),
            (&HeldQueue::Queue("jobs".into()), "w", 7)
        );
        let mut headers = Headers::new();
        headers.push("k", "v");
        consumer.sink.deliver(headers, "job".into(), true).unwrap()
    };
    let m = c.expect_message().await;
    assert_eq!(m.header("destination"), Some("/queue/jobs"));
    assert_eq!(m.header("redelivered"), Some("true"));
    assert_eq!(m.header("k"), Some("v"));
    let ack = m.header("ack").unwrap().to_owned();
    assert_eq!(ack, tag.to_string());
    c.send_with_receipt(frames::nack(&ack), "n").await;
    c.send_with_receipt(frames::unsubscribe("w"), "u").await;
    let session = holder.consumers.lock().unwrap()[0].session;
    assert_eq!(
        *holder.settled.lock().unwrap(),
        [(session, "w".to_owned(), vec![tag], false)]
    );
    assert_eq!(
        *holder.unsubscribed.lock().unwrap(),
        [(session, "w".to_owned())]
    );
    // After the session is gone its sink refuses (the backplane requeues).
    c.disconnect().await;
    let consumers = holder.consumers.lock().unwrap();
    assert_eq!(
        consumers[0]
            .sink
            .deliver(Headers::new(), "late".into(), false),
        None
    );
}

#[tokio::test]
async fn durable_subscriptions_are_held_by_a_backplane_that_holds_queues() {
    let holder = Arc::new(QueueHolder::default());
    let broker = Broker::builder().backplane(holder.clone()).build().unwrap();
    let login = frames::connect().with_header("login", "carol");
    let (mut c, _) = TestClient::connect_with(&broker, login).await;
    c.subscribe_with(
        frames::subscribe_ack("feed", "/topic/scores.*", "client").with_header("durable", "true"),
    )
    .await;
    c.send_with_receipt(frames::send("/topic/scores.a", "x"), "p")
        .await;
    // Published to the topic (the backplane feeds the subscription), kept nowhere here.
    assert_eq!(
        *holder.forwarded.lock().unwrap(),
        [Target::Topic("scores.a".into())]
    );
    assert!(broker.queues().is_empty(), "{:?}", broker.queues());
    c.expect_no_frame(QUIET).await;
    let tag = {
        let consumers = holder.consumers.lock().unwrap();
        let consumer = &consumers[0];
        let wanted = HeldQueue::Durable {
            user: "carol".into(),
            name: "feed".into(),
            topic: "scores.*".into(),
        };
        assert_eq!(consumer.queue, wanted);
        (consumer.sink).deliver_from("scores.b", Headers::new(), "kept".into(), true)
    };
    let m = c.expect_message().await;
    assert_eq!(m.header("destination"), Some("/topic/scores.b"));
    assert_eq!(m.header("subscription"), Some("feed"));
    assert_eq!(m.body.as_ref(), b"kept");
    assert_eq!(m.header("ack"), tag.map(|t| t.to_string()).as_deref());
    c.send_with_receipt(frames::ack(m.header("ack").unwrap()), "a")
        .await;
    let session = holder.consumers.lock().unwrap()[0].session;
    assert_eq!(
        *holder.settled.lock().unwrap(),
        [(session, "feed".to_owned(), vec![tag.unwrap()], true)]
    );
    assert!(holder.removed.lock().unwrap().is_empty());
    c.send_with_receipt(
        frames::unsubscribe("feed").with_header("durable", "true"),
        "u",
    )
    .await;
    assert_eq!(
        *holder.removed.lock().unwrap(),
        [HeldQueue::Durable {
            user: "carol".into(),
            name: "feed".into(),
            topic: "scores.*".into(),
        }]
    );
    assert_eq!(
        *holder.unsubscribed.lock().unwrap(),
        [(session, "feed".to_owned())]
    );
}

#[tokio::test]
async fn inboxes_are_held_by_a_backplane_that_holds_queues() {
    let holder = Arc::new(QueueHolder::default());
    let mut config = stompbox_broker::Config::default();
    config.inbox.destinations = vec!["/queue/notifications".into()];
    let broker = Broker::builder()
        .config(config)
        .backplane(holder.clone())
        .build()
        .unwrap();
    // Sent while bob is nowhere: to the backplane as an inbox message, kept nowhere here.
    broker
        .send_to_user("bob", "/queue/notifications", "liked")
        .unwrap();
    broker.send_to_user("bob", "/queue/chat", "hi").unwrap();
    let inbox = |user: &str| Target::Inbox {
        user: user.into(),
        destination: "/queue/notifications".into(),
    };
    let chat = Target::User {
        user: "bob".into(),
        destination: "/queue/chat".into(),
    };
    assert_eq!(*holder.forwarded.lock().unwrap(), [inbox("bob"), chat]);
    assert!(broker.queues().is_empty(), "{:?}", broker.queues());

    // Bob's two subscriptions: one interest per inbox destination, the inbox drained by the
    // backplane into the sink.
    let login = frames::connect().with_header("login", "bob");
    let (mut bob, _) = TestClient::connect_with(&broker, login).await;
    bob.subscribe("n", "/user/queue/notifications").await;
    bob.subscribe("c", "/user/queue/chat").await;
    let (mut other, _) =
        TestClient::connect_with(&broker, frames::connect().with_header("login", "bob")).await;
    other.subscribe("n2", "/user/queue/notifications").await;
    let wanted = Interest::Inbox {
        user: "bob".into(),
        destination: "/queue/notifications".into(),
    };
    assert_eq!(
        *holder.interest.lock().unwrap(),
        [(Interest::User("bob".into()), true), (wanted.clone(), true)],
        "one report for the first of bob's subscriptions to it"
    );
    {
        let consumers = holder.consumers.lock().unwrap();
        let held: Vec<&HeldQueue> = consumers.iter().map(|c| &c.queue).collect();
        let bobs = HeldQueue::Inbox {
            user: "bob".into(),
            destination: "/queue/notifications".into(),
        };
        assert_eq!(held, [&bobs, &bobs]);
        consumers[0]
            .sink
            .deliver(Headers::new(), "kept".into(), false)
            .unwrap();
    }
    let m = bob.expect_message().await;
    assert_eq!(
        (m.header("destination"), m.body.as_ref()),
        (Some("/user/queue/notifications"), &b"kept"[..])
    );
    bob.send_with_receipt(frames::unsubscribe("n"), "u").await;
    assert_eq!(
        holder.interest.lock().unwrap().len(),
        2,
        "other is still there"
    );
    other.disconnect().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while holder.interest.lock().unwrap().last() != Some(&(wanted.clone(), false)) {
        assert!(tokio::time::Instant::now() < deadline, "no interest ended");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
