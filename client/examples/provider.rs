//! A tiny RPC provider: answers `echo <text>` lines over TCP and registers
//! itself in the Dubbo layout so consumers can find it.
//!
//! ```text
//! cargo run -p canopy-client --example provider -- --zk 127.0.0.1:2181 --name p1 --weight 300
//! ```
//! Options: `--zk <connect string>` (default 127.0.0.1:2181), `--name <label>`,
//! `--port <port>` (default 0: any free port), `--weight <n>` (default 100),
//! `--interface <name>` (default org.example.Echo), `--session-timeout-ms <ms>`
//! (default 4000: a killed provider disappears from consumers about that long after).
//! Ctrl-C unregisters at once; `kill -9` leaves it to session expiry.

use std::collections::HashMap;
use std::time::Duration;

use canopy_client::registry::{Registry, RegistryConfig};
use canopy_client::url::DubboUrl;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

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
    let name = get("name", &format!("provider-{}", std::process::id()));
    let weight: u32 = get("weight", "100").parse()?;
    let interface = get("interface", "org.example.Echo");
    let session_ms: u64 = get("session-timeout-ms", "4000").parse()?;

    let listener = TcpListener::bind(("127.0.0.1", get("port", "0").parse::<u16>()?)).await?;
    let port = listener.local_addr()?.port();
    let url = DubboUrl::parse(&format!(
        "dubbo://127.0.0.1:{port}/{interface}?application=demo-provider&interface={interface}\
         &methods=echo&name={name}&weight={weight}&warmup=0&timestamp={}",
        canopy_client::balance::now_ms()
    ))?;
    let registry = Registry::start(
        RegistryConfig::new(&zk).session_timeout(Duration::from_millis(session_ms)),
    )
    .await?;
    let path = registry.register(&url).await?;
    println!("{name}: serving {interface} on 127.0.0.1:{port} (weight {weight})");
    println!("{name}: registered {path}");

    let serve = async {
        loop {
            let (socket, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("{name}: accept failed: {e}");
                    continue;
                }
            };
            let name = name.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply = match line.split_once(' ') {
                        Some(("echo", text)) => format!("{name}: {text}\n"),
                        _ => format!("{name}: error unknown request {line:?}\n"),
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    };
    tokio::select! {
        _ = serve => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    registry.unregister(&url).await?;
    registry.close().await;
    println!("{name}: unregistered, bye");
    Ok(())
}
