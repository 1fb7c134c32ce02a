//! Request throughput of the client: get_data or create, with a given number
//! of requests in flight on one session.
//!
//! ```text
//! cargo run --release -p canopy-client --example client_bench -- \
//!     --zk 127.0.0.1:2181 --ops 20000 --inflight 1,256 --op get,create
//! ```
//! Each of `inflight` workers issues its next request as soon as its
//! previous one is answered, so exactly that many are pipelined at any time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use canopy_client::{Client, CreateMode, CreateOptions};

fn args() -> HashMap<String, String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    raw.chunks(2)
        .filter_map(|pair| match pair {
            [key, value] => Some((key.trim_start_matches("--").to_string(), value.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args();
    let get = |key: &str, default: &str| args.get(key).cloned().unwrap_or_else(|| default.into());
    let zk = get("zk", "127.0.0.1:2181");
    let ops: u64 = get("ops", "20000").parse()?;
    let client = Client::connect(&zk).await?;
    let root = format!("/client-bench-{}", std::process::id());
    client
        .create(&root, b"", &CreateOptions::persistent())
        .await?;
    let target = format!("{root}/data");
    client
        .create(&target, &[7u8; 100], &CreateOptions::persistent())
        .await?;

    println!(
        "{:<8} {:>9} {:>10} {:>12}",
        "op", "in flight", "requests", "requests/s"
    );
    for op in get("op", "get,create").split(',') {
        for inflight in get("inflight", "1,256").split(',') {
            let inflight: u64 = inflight.trim().parse()?;
            let issued = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let workers = (0..inflight).map(|_| {
                let client = client.clone();
                let issued = issued.clone();
                let target = target.clone();
                let prefix = format!("{root}/n-");
                let op = op.to_string();
                tokio::spawn(async move {
                    while issued.fetch_add(1, Ordering::Relaxed) < ops {
                        let result = match op.as_str() {
                            "create" => client
                                .create(
                                    &prefix,
                                    b"x",
                                    &CreateOptions::new(CreateMode::PersistentSequential),
                                )
                                .await
                                .map(drop),
                            _ => client.get_data(&target).await.map(drop),
                        };
                        if let Err(e) = result {
                            eprintln!("request failed: {e}");
                        }
                    }
                })
            });
            futures::future::join_all(workers).await;
            let elapsed = started.elapsed();
            println!(
                "{op:<8} {inflight:>9} {ops:>10} {:>12.0}",
                ops as f64 / elapsed.as_secs_f64()
            );
        }
    }
    Ok(())
}
