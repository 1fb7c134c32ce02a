//! Starting a server: the data folder, the state, the periodic tasks (session
//! expiry every bucket, container and TTL cleanup) and the client port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access::{AccessControl, AccessRules};
use crate::admin;
use crate::config::Config;
use crate::core::Core;
use crate::metrics::Metrics;
use crate::net;
use crate::storage::{Storage, StorageError};

/// A running server.
pub struct Server {
    pub core: Arc<Mutex<Core>>,
    pub local_addr: SocketAddr,
    /// The secure (TLS) client port, when one is configured.
    pub secure_addr: Option<SocketAddr>,
    /// Where the admin server listens, if it is on and could bind.
    pub admin_addr: Option<SocketAddr>,
    pub access: Arc<AccessControl>,
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
    /// Recovers the data folder, binds the client port and starts serving in
    /// the background.
    pub async fn start(mut config: Config) -> Result<Server, StartError> {
        // Settings errors stop the start before anything is touched.
        let auth = crate::auth::setup(&config).map_err(StartError::Config)?;
        config.sasl.users = auth.sasl_users;
        let tls_acceptor = match &config.tls {
            Some(tls) if config.secure_port.is_some() => {
                Some(crate::tls::acceptor(tls).map_err(StartError::Config)?)
            }
            _ => None,
        };
        config.validate().map_err(StartError::Config)?;
        let access =
            AccessControl::new(AccessRules::from_config(&config).map_err(StartError::Config)?);
        let metrics = Arc::new(Metrics::default());
        let secret = load_secret(&config).map_err(StartError::Io)?;
        let started = std::time::Instant::now();
        let durable = Arc::new(tokio::sync::watch::Sender::new(0));
        let (recovered, storage) = Storage::open(&config, durable.clone(), metrics.clone())?;
        tracing::info!(
            nodes = recovered.tree.node_count(),
            sessions = recovered.sessions.len(),
            last_zxid = format!("0x{:x}", recovered.last_zxid),
            snapshot = recovered
                .snapshot
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none".into()),
            replayed = recovered.replayed,
            millis = started.elapsed().as_millis() as u64,
            "data loaded"
        );
        metrics.startup_millis.store(
            started.elapsed().as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        metrics
            .startup_txns_loaded
            .store(recovered.replayed, std::sync::atomic::Ordering::Relaxed);
        let listener = TcpListener::bind((config.bind, config.port))
            .await
            .map_err(StartError::Io)?;
        let local_addr = listener.local_addr().map_err(StartError::Io)?;
        let secure_listener = match (config.secure_port, &tls_acceptor) {
            (Some(port), Some(_)) => Some(
                TcpListener::bind((config.bind, port))
                    .await
                    .map_err(StartError::Io)?,
            ),
            _ => None,
        };
        let secure_addr = match &secure_listener {
            Some(listener) => Some(listener.local_addr().map_err(StartError::Io)?),
            None => None,
        };
        // Report the port actually bound (port 0 picks a free one).
        let config = Arc::new(Config {
            port: local_addr.port(),
            secure_port: secure_addr.map(|addr| addr.port()),
            ..config
        });
        let core = Core::restore(
            config.clone(),
            secret,
            recovered,
            storage,
            durable,
            metrics,
            access.clone(),
        );
        let core = Arc::new(Mutex::new(core));
        let shutdown = CancellationToken::new();

        tokio::spawn(periodic(
            Duration::from_millis(crate::session::bucket_ms(config.tick_time_ms)),
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
        if let (Some(listener), Some(acceptor), Some(addr)) =
            (secure_listener, tls_acceptor, secure_addr)
        {
            tokio::spawn(crate::tls::serve(
                listener,
                acceptor,
                core.clone(),
                shutdown.clone(),
            ));
            tracing::info!("listening with TLS on {addr}");
        }
        // As in ZooKeeper, an admin port that cannot be bound is logged and
        // the client port serves on.
        let admin_addr = admin::start(&config, core.clone(), shutdown.clone()).await;
        Ok(Server {
            core,
            local_addr,
            secure_addr,
            admin_addr,
            access,
            shutdown,
        })
    }

    /// Stops accepting connections and the periodic tasks, and writes what
    /// is queued to the log.
    pub fn stop(&self) {
        self.shutdown.cancel();
        self.core.lock().close_storage();
    }

    /// A graceful stop (SIGTERM): stop accepting, let queued replies reach
    /// their clients, then write the log out. See [`crate::shutdown`].
    pub async fn shutdown(&self) -> crate::shutdown::Report {
        self.shutdown.cancel();
        crate::shutdown::drain(&self.core).await
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Io(std::io::Error),
    #[error("bad configuration: {0}")]
    Config(String),
    #[error("cannot recover the data folder: {0}")]
    Storage(#[from] StorageError),
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
