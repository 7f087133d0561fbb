//! A run that loses, duplicates or reorders anything is reported as failed, with exact counts.
//! The broker here is a deliberately faulty stand-in (a few lines of STOMP over WebSocket) that
//! mistreats chosen messages, so the outcome is fixed by construction, not by timing.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use stompbox_bench::{Amount, Common, Load, Report, Scenario, run};
use stompbox_codec::{Command, Decoder, Frame, Item, Version, encode};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::tungstenite::{
    Message,
    handshake::server::{ErrorResponse, Request, Response},
    http::HeaderValue,
};

/// SEND number (from 0, over the whole run) → what the faulty broker does with it.
fn fault(n: usize) -> Fault {
    match n {
        4 => Fault::Drop,
        7 => Fault::Duplicate,
        10 => Fault::HoldForNext,
        _ => Fault::None,
    }
}

#[derive(PartialEq)]
enum Fault {
    None,
    Drop,
    Duplicate,
    /// Delivered after the next one: a reordering.
    HoldForNext,
}

type Subscribers = Arc<Mutex<Vec<mpsc::UnboundedSender<Message>>>>;

/// Serves WebSocket STOMP on 127.0.0.1:0: CONNECT, SUBSCRIBE (with RECEIPT), and SEND delivered
/// to every subscriber as MESSAGE, mistreated per [`fault`].
async fn faulty_broker() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let subscribers: Subscribers = Arc::default();
    let sends = Arc::new(Mutex::new((0usize, None::<Message>)));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (subscribers, sends) = (subscribers.clone(), sends.clone());
            tokio::spawn(async move {
                #[allow(clippy::result_large_err)]
                let accept = |_: &Request, mut response: Response| {
                    response.headers_mut().insert(
                        "sec-websocket-protocol",
                        HeaderValue::from_static("v12.stomp"),
                    );
                    Ok::<_, ErrorResponse>(response)
                };
                let ws = tokio_tungstenite::accept_hdr_async(stream, accept)
                    .await
                    .unwrap();
                let (mut sink, mut source) = ws.split();
                let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
                tokio::spawn(async move {
                    while let Some(message) = rx.recv().await {
                        if sink.send(message).await.is_err() {
                            return;
                        }
                    }
                });
                let mut decoder = Decoder::default();
                let mut buf = BytesMut::new();
                while let Some(Ok(message)) = source.next().await {
                    buf.extend_from_slice(&message.into_data());
                    while let Ok(Some(Item::Frame(frame))) = decoder.decode(&mut buf) {
                        match frame.command {
                            Command::Connect => {
                                let _ = tx.send(text(
                                    &Frame::new(Command::Connected).with_header("version", "1.2"),
                                ));
                            }
                            Command::Subscribe => {
                                subscribers.lock().unwrap().push(tx.clone());
                                let receipt = frame.header("receipt").unwrap_or("").to_owned();
                                let _ = tx.send(text(
                                    &Frame::new(Command::Receipt)
                                        .with_header("receipt-id", receipt),
                                ));
                            }
                            Command::Send => {
                                let delivery = text(
                                    &Frame::new(Command::Message)
                                        .with_header(
                                            "destination",
                                            frame.header("destination").unwrap_or(""),
                                        )
                                        .with_body(frame.body.clone()),
                                );
                                let mut out = Vec::new();
                                {
                                    let mut sends = sends.lock().unwrap();
                                    let n = sends.0;
                                    sends.0 += 1;
                                    match fault(n) {
                                        Fault::Drop => {}
                                        Fault::Duplicate => {
                                            out.extend([delivery.clone(), delivery])
                                        }
                                        Fault::HoldForNext => sends.1 = Some(delivery),
                                        Fault::None => {
                                            out.push(delivery);
                                            out.extend(sends.1.take());
                                        }
                                    }
                                }
                                for subscriber in subscribers.lock().unwrap().iter() {
                                    for message in &out {
                                        let _ = subscriber.send(message.clone());
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
            });
        }
    });
    url
}

fn text(frame: &Frame) -> Message {
    let mut out = BytesMut::new();
    encode(frame, Version::V1_2, &mut out);
    Message::text(String::from_utf8(out.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losses_duplicates_and_reordering_fail_the_run_with_exact_counts() {
    let url = faulty_broker().await;
    let mut common = Common::new(url);
    common.timeout = Duration::from_secs(30);
    let mut load = Load::new(1, 2);
    load.amount = Amount::Messages(20);
    // How long the run waits for the dropped message before calling it lost.
    load.drain = Duration::from_secs(2);
    let report = run(Scenario::Fanout(common, load)).await;
    let json = report.to_json();
    let Report::Load(report) = report else {
        panic!("a load report: {json}")
    };
    assert!(!report.ok, "{json}");
    assert_eq!(report.sent, 20, "{json}");
    assert_eq!(report.expected, 40, "{json}");
    // Per subscriber: #4 lost, #7 twice, #10 after #11.
    assert_eq!(report.delivered, 38, "{json}");
    assert_eq!(report.lost, 2, "{json}");
    assert_eq!(report.duplicates, 2, "{json}");
    assert_eq!(report.out_of_order, 2, "{json}");
    let error = report.error.unwrap();
    assert!(error.starts_with("verification failed"), "{error}");
}
