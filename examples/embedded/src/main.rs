//! Run: `cargo run -p example-embedded`, then subscribe to `/topic/announcements` on
//! `ws://127.0.0.1:8080/stomp` and `curl -d 'hello' http://127.0.0.1:8080/announce`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt::init();
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    example_embedded::serve(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
