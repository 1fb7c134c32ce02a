//! Starting a server: the data folder, the state, the periodic tasks (session
//! expiry every tick, container and TTL cleanup) and the client port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::core::Core;
use crate::net;

/// A running server.
pub struct Server {
    pub core: Arc<Mutex<Core>>,
    pub local_addr: SocketAddr,
    shutdown: CancellationToken,
}

/// Reads the server secret from the data folder, creating it on first start.
/// Session passwords derive from it, so clients can re-attach after a restart.
fn load_secret(config: &Config) -> std::io::Result<[u8; 16]> {
    std::fs::create_dir_all(&config.data_dir)?;
    let path = config.data_dir.join("secret");
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(secret) = <[u8; 16]>::try_from(bytes.as_slice()) {
            return Ok(secret);
        }
    }
    let secret: [u8; 16] = rand::random();
    std::fs::write(&path, secret)?;
    Ok(secret)
}

impl Server {
    /// Binds the client port and starts serving in the background.
    pub async fn start(config: Config) -> std::io::Result<Server> {
        let secret = load_secret(&config)?;
        let listener = TcpListener::bind((config.bind, config.port)).await?;
        let local_addr = listener.local_addr()?;
        // Report the port actually bound (port 0 picks a free one).
        let config = Arc::new(Config {
            port: local_addr.port(),
            ..config
        });
        let core = Arc::new(Mutex::new(Core::new(config.clone(), secret)));
        let shutdown = CancellationToken::new();

        tokio::spawn(periodic(
            Duration::from_millis(config.tick_time_ms.max(1)),
            shutdown.clone(),
            {
                let core = core.clone();
                move || {
                    core.lock().expire_sessions();
                }
            },
        ));
        tokio::spawn(periodic(
            Duration::from_millis(config.container_check_interval_ms.max(1)),
            shutdown.clone(),
            {
                let core = core.clone();
                move || {
                    core.lock().remove_expired_containers();
                }
            },
        ));
        tokio::spawn(net::serve(listener, core.clone(), shutdown.clone()));
        tracing::info!("listening on {local_addr}");
        Ok(Server {
            core,
            local_addr,
            shutdown,
        })
    }

    /// Stops accepting connections and the periodic tasks.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

async fn periodic(every: Duration, shutdown: CancellationToken, mut task: impl FnMut()) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => task(),
        }
    }
}
