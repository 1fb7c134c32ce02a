//! The session a command runs in: connected on first use, with the
//! credentials of `--auth` added, and closed at the end so ephemeral nodes
//! of one-shot commands go at once.

use std::time::Duration;

use canopy_client::Client;

use crate::args::Common;
use crate::error::{AtPath, CliError, CliResult};

pub struct Ctx {
    pub server: String,
    pub auth: Vec<String>,
    pub connect_timeout: Duration,
    /// In `canopy shell`: watches print later instead of blocking.
    pub interactive: bool,
    client: Option<Client>,
}

impl Ctx {
    pub fn new(common: &Common, interactive: bool) -> Ctx {
        Ctx {
            server: common.server.clone(),
            auth: common.auth.clone(),
            connect_timeout: Duration::from_secs_f64(common.connect_timeout.max(0.1)),
            interactive,
            client: None,
        }
    }

    /// The session, connecting first if there is none yet.
    pub async fn client(&mut self) -> CliResult<Client> {
        if let Some(client) = &self.client {
            if !client.state().is_terminal() {
                return Ok(client.clone());
            }
        }
        let client = connect(&self.server, self.connect_timeout).await?;
        for cred in &self.auth {
            add_auth(&client, cred).await?;
        }
        self.client = Some(client.clone());
        Ok(client)
    }

    pub fn connected(&self) -> Option<Client> {
        self.client.clone()
    }

    /// Switches to another server (the shell's `connect`).
    pub async fn reconnect(&mut self, server: &str) -> CliResult<Client> {
        self.close().await;
        self.server = server.to_string();
        self.client().await
    }

    pub async fn close(&mut self) {
        if let Some(client) = self.client.take() {
            client.close().await;
        }
    }
}

/// Connects to `server`, giving up after `timeout`.
pub async fn connect(server: &str, timeout: Duration) -> CliResult<Client> {
    Client::builder(server)
        .session_timeout(Duration::from_secs(30))
        .connect_timeout(timeout)
        .connect()
        .await
        .map_err(|e| match e {
            canopy_client::Error::BadArguments(why) => {
                CliError::new(format!("BadArguments: {why}"))
            }
            other => CliError::new(format!(
                "ConnectionLoss: cannot connect to {server}: {other}"
            )),
        })
}

/// `scheme:auth` (e.g. `digest:bob:secret`).
pub async fn add_auth(client: &Client, cred: &str) -> CliResult<()> {
    let (scheme, auth) = cred.split_once(':').ok_or_else(|| {
        CliError::new(format!("BadArguments: --auth {cred:?} is not scheme:auth"))
    })?;
    client.add_auth(scheme, auth.as_bytes()).await.at(scheme)
}
