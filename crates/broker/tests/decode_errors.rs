//! Every codec `DecodeError` becomes an ERROR whose `message` names the cause with its numbers,
//! flushed before the connection closes.

use std::time::Duration;

use stompbox_broker::{Broker, CloseReason, Config};
use stompbox_test_support::{TestClient, frames};

fn broker() -> Broker {
    let config = Config {
        max_frame_size_before_connect: 256,
        max_frame_size: 600,
        max_body_size: 512,
        max_headers: 4,
        max_header_line: 64,
        ..Config::default()
    };
    Broker::builder().config(config).build().unwrap()
}

/// Connects (unless `before_connect`), sends `input`, expects ERROR `message` then the close.
async fn expect_decode_error(before_connect: bool, input: &[u8], message: &str) {
    let broker = broker();
    let mut client = if before_connect {
        TestClient::start(&broker)
    } else {
        TestClient::connect(&broker).await
    };
    client.send_bytes(input.to_vec()).await;
    let error = client.expect_error(message).await;
    assert_eq!(error.header("content-type"), Some("text/plain"));
    let body = String::from_utf8(error.body.to_vec()).unwrap();
    assert!(body.contains(message), "body {body:?} details {message:?}");
    assert_eq!(
        client.expect_closed().await,
        CloseReason::ProtocolError(message.to_owned())
    );
}

#[tokio::test]
async fn unknown_command() {
    expect_decode_error(false, b"FOO\n\n\0", r#"unknown command "FOO""#).await;
    expect_decode_error(true, b"connect\n\n\0", r#"unknown command "connect""#).await;
}

#[tokio::test]
async fn malformed_header() {
    expect_decode_error(
        false,
        b"SEND\nnocolon\n\n\0",
        r#"malformed header line "nocolon""#,
    )
    .await;
    expect_decode_error(false, b"SEND\n:v\n\n\0", r#"malformed header line ":v""#).await;
}

#[tokio::test]
async fn invalid_escape() {
    expect_decode_error(
        false,
        b"SEND\ndestination:/topic/a\nk:a\\tb\n\n\0",
        r#"undefined escape sequence "\\t" in header"#,
    )
    .await;
}

#[tokio::test]
async fn invalid_utf8() {
    expect_decode_error(
        false,
        b"SEND\nk:\xff\n\n\0",
        "header text is not valid UTF-8",
    )
    .await;
}

#[tokio::test]
async fn invalid_content_length() {
    expect_decode_error(
        false,
        b"SEND\ncontent-length:12a\n\n\0",
        r#"content-length "12a" is not a decimal byte count"#,
    )
    .await;
}

#[tokio::test]
async fn missing_nul_after_content_length() {
    expect_decode_error(
        false,
        b"SEND\ncontent-length:2\n\nabc\0",
        "no NUL after the 2 bytes announced by content-length",
    )
    .await;
}

#[tokio::test]
async fn bare_carriage_return() {
    expect_decode_error(
        false,
        b"\rSEND",
        "carriage return not followed by a line feed",
    )
    .await;
}

#[tokio::test]
async fn a_nul_in_a_header_is_an_error_and_close() {
    let broker = broker();
    let mut subscriber = TestClient::connect(&broker).await;
    subscriber.subscribe("0", "/topic/nul").await;
    let mut bystander = TestClient::connect(&broker).await;
    let mut hostile = TestClient::connect(&broker).await;
    // Passed on, the value would end the subscriber's MESSAGE at the NUL and start a new frame.
    hostile
        .send_bytes(&b"SEND\ndestination:/topic/nul\nx:a\0MESSAGE\n\nbody\0"[..])
        .await;
    let message = r#"NUL byte in header "x""#;
    let error = hostile.expect_error(message).await;
    let body = String::from_utf8(error.body.to_vec()).unwrap();
    assert_eq!(
        body,
        format!("{message}; the stream cannot be resynchronised")
    );
    assert_eq!(
        hostile.expect_closed().await,
        CloseReason::ProtocolError(message.to_owned())
    );
    // Nothing was routed, and the other sessions carry on.
    bystander
        .send_with_receipt(frames::send("/topic/nul", "fine"), "r")
        .await;
    let m = subscriber.expect_message().await;
    assert_eq!(&m.body[..], b"fine");
    assert_eq!(m.header("x"), None);
    subscriber.expect_no_frame(Duration::from_millis(50)).await;
    assert_eq!(broker.stats().messages_received, 1);
    // In a name, before CONNECT, in CONNECT itself: the same, the name quoted with escapes.
    expect_decode_error(false, b"SEND\nx\0y:1\n\n\0", r#"NUL byte in header "x\0y""#).await;
    expect_decode_error(
        true,
        b"CONNECT\naccept-version:1.2\nlogin:a\0b\n\n\0",
        r#"NUL byte in header "login""#,
    )
    .await;
}

#[tokio::test]
async fn a_bare_cr_in_a_header_is_an_error_and_close() {
    let message = r#"carriage return not followed by a line feed in header "x""#;
    // A reader that splits lines on CR alone would see a second header here.
    expect_decode_error(
        false,
        b"SEND\r\ndestination:/topic/a\r\nx:a\rdestination:/queue/b\r\n\r\n\0",
        message,
    )
    .await;
    expect_decode_error(false, b"SEND\nx:a\r\r\n\n\0", message).await;
    // 1.2's escaped `\r` is not a CR on the wire: delivered as a CR.
    let broker = broker();
    let mut subscriber = TestClient::connect(&broker).await;
    subscriber.subscribe("0", "/topic/cr").await;
    let mut publisher = TestClient::connect(&broker).await;
    publisher
        .send_bytes(&b"SEND\ndestination:/topic/cr\nx:a\\rb\n\nbody\0"[..])
        .await;
    assert_eq!(subscriber.expect_message().await.header("x"), Some("a\rb"));
}

#[tokio::test]
async fn too_many_headers() {
    expect_decode_error(
        false,
        b"SEND\na:1\nb:2\nc:3\nd:4\ne:5\n\n\0",
        "more than 4 headers",
    )
    .await;
}

#[tokio::test]
async fn header_line_too_long() {
    let mut input = b"SEND\nk:".to_vec();
    input.extend(std::iter::repeat_n(b'v', 98));
    input.extend_from_slice(b"\n\n\0");
    expect_decode_error(
        false,
        &input,
        "header line of at least 100 bytes exceeds the maximum of 64",
    )
    .await;
}

#[tokio::test]
async fn body_too_large_announced_or_streamed() {
    expect_decode_error(
        false,
        b"SEND\ndestination:/topic/a\ncontent-length:600\n\n",
        "body of at least 600 bytes exceeds the maximum of 512",
    )
    .await;
    let mut input = b"SEND\ndestination:/topic/a\n\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 513));
    expect_decode_error(
        false,
        &input,
        "body of at least 513 bytes exceeds the maximum of 512",
    )
    .await;
}

#[tokio::test]
async fn frame_too_large_once_connected() {
    // head (109 bytes) + announced body (510) > 600, though the body alone fits.
    let mut head = b"SEND\ndestination:/topic/a\ncontent-length:510\nx:".to_vec();
    head.extend(std::iter::repeat_n(b'v', 60));
    head.extend_from_slice(b"\n\n");
    assert_eq!(head.len(), 109);
    expect_decode_error(
        false,
        &head,
        "frame of at least 619 bytes exceeds the maximum of 600",
    )
    .await;
}

#[tokio::test]
async fn smaller_limits_before_connect() {
    // 200 bytes of body is fine once connected but not before CONNECT (256 for the frame).
    let mut input = b"CONNECT\naccept-version:1.2\n\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 257));
    expect_decode_error(
        true,
        &input,
        "body of at least 257 bytes exceeds the maximum of 256",
    )
    .await;
    let mut input = b"CONNECT\n".to_vec();
    for h in 0..4 {
        input.extend_from_slice(format!("h{h}:").as_bytes());
        input.extend(std::iter::repeat_n(b'v', 60));
        input.push(b'\n');
    }
    // 8 + 4 × 64 = 264 bytes of head before its blank line.
    expect_decode_error(
        true,
        &input,
        "frame of at least 264 bytes exceeds the maximum of 256",
    )
    .await;
}

#[tokio::test]
async fn connected_limits_apply_after_connect() {
    let broker = broker();
    let mut client = TestClient::connect(&broker).await;
    client.subscribe("0", "/topic/big").await;
    // 400 bytes: over the before-CONNECT limit, within the connected one.
    let mut input = b"SEND\ndestination:/topic/big\nreceipt:r\n\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 400));
    input.push(0);
    client.send_bytes(input).await;
    let m = client.expect_message().await;
    assert_eq!(m.body.len(), 400);
    client.expect_receipt("r").await;
}
