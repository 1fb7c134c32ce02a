//! A tiny RPC consumer: subscribes to the providers of an interface, picks
//! one per call with the selector named on the command line, calls it over
//! TCP and prints who answered.
//!
//! ```text
//! cargo run -p canopy-client --example consumer -- --zk 127.0.0.1:2181 --selector roundrobin
//! ```
//! Options: `--zk <connect string>`, `--selector
//! random|roundrobin|leastactive|consistenthash|shortestresponse|p2c` (default random),
//! `--calls <n>` (default 20, 0 = forever), `--interval-ms <ms>` (default 500),
//! `--interface <name>` (default org.example.Echo).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canopy_client::balance::{selector_by_name, Call, CallStats};
use canopy_client::registry::{Registry, RegistryConfig};
use canopy_client::url::DubboUrl;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn args() -> HashMap<String, String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    raw.chunks(2)
        .filter_map(|pair| match pair {
            [key, value] => Some((key.trim_start_matches("--").to_string(), value.clone())),
            _ => None,
        })
        .collect()
}

async fn call(address: &str, text: &str) -> std::io::Result<String> {
    let mut socket = TcpStream::connect(address).await?;
    socket
        .write_all(format!("echo {text}\n").as_bytes())
        .await?;
    let mut line = String::new();
    BufReader::new(socket).read_line(&mut line).await?;
    Ok(line.trim_end().to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args();
    let get = |key: &str, default: &str| args.get(key).cloned().unwrap_or_else(|| default.into());
    let zk = get("zk", "127.0.0.1:2181");
    let interface = get("interface", "org.example.Echo");
    let selector = selector_by_name(&get("selector", "random"))?;
    let calls: u64 = get("calls", "20").parse()?;
    let interval = Duration::from_millis(get("interval-ms", "500").parse()?);

    let registry = Registry::start(RegistryConfig::new(&zk)).await?;
    let providers: Arc<Mutex<(u64, Vec<DubboUrl>)>> = Arc::default();
    let mut subscription = registry.subscribe(&interface);
    // The first snapshot, so the first call has something to pick from.
    if let Some(first) = subscription.next_snapshot().await {
        *providers.lock().expect("providers") = (1, first.into_iter().map(|p| p.url).collect());
    }
    {
        let providers = providers.clone();
        let interface = interface.clone();
        tokio::spawn(async move {
            while let Some(snapshot) = subscription.next_snapshot().await {
                let list: Vec<String> = snapshot
                    .iter()
                    .map(|p| format!("{} (weight {})", p.address(), p.weight))
                    .collect();
                println!("providers of {interface} now: [{}]", list.join(", "));
                let mut slot = providers.lock().expect("providers");
                *slot = (slot.0 + 1, snapshot.into_iter().map(|p| p.url).collect());
            }
        });
    }
    println!(
        "consumer: selector {}, {} providers",
        selector.name(),
        providers.lock().expect("providers").1.len()
    );

    let stats = CallStats::new();
    let key = format!("{interface}.echo");
    let mut n = 0u64;
    while calls == 0 || n < calls {
        n += 1;
        let picked = {
            let guard = providers.lock().expect("providers");
            let (generation, list) = &*guard;
            let call_info = Call::new(&key, &stats).with_snapshot(*generation);
            selector.select(list, &call_info).cloned()
        };
        match picked {
            None => println!("call {n}: no provider available"),
            Some(provider) => {
                let address = provider.address();
                let guard = stats.begin(&provider);
                let started = Instant::now();
                match call(&address, &format!("hello-{n}")).await {
                    Ok(reply) => {
                        guard.succeed();
                        println!(
                            "call {n}: {address} (weight {}) answered {reply:?} in {:?}",
                            provider.weight(),
                            started.elapsed()
                        );
                    }
                    Err(e) => {
                        guard.fail();
                        println!("call {n}: {address} failed: {e}");
                    }
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
    registry.close().await;
    Ok(())
}
