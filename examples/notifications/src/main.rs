//! Run: `cargo run -p example-notifications`; connect to ws://127.0.0.1:8080/stomp with
//! `login: alice`, `passcode: climb`, and `curl` events into `POST /notify/alice` (see lib.rs).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt::init();
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("notifications on ws://{}/stomp", listener.local_addr()?);
    example_notifications::serve(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
