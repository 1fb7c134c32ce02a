//! A service registry in Dubbo's ZooKeeper layout that survives session
//! expiry by itself.
//!
//! # Layout
//! - [`dubbo`]: `/dubbo/<interface>/<category>/<url>` paths and [`Provider`] records.
//! - [`app`]: Dubbo 3's `/services/<app>/<ip:port>` instances with JSON metadata.
//! - this module: the [`Registry`] itself: registration, subscriptions, and the
//!   supervisor that replaces an expired session.
//!
//! # Why a supervisor
//! A ZooKeeper client never makes a new session on its own: after `Expired`
//! its ephemeral nodes are gone and its watches with them. The registry keeps
//! what it registered and what it watches, and when the session expires it
//! connects again (backing off with jitter, so a fleet of clients does not
//! stampede a restarted server), re-creates every node and lets every
//! subscription re-read and re-arm its watch.
//!
//! # The NodeExists trap
//! Re-registering right after an expiry can find the node still there: the
//! server has not yet deleted the ephemeral nodes of the dead session, or an
//! old process of the same address left one. Ignoring NodeExists (as older
//! Dubbo versions did) leaves the provider unregistered once the server gets
//! round to deleting it. The registry checks the owner and, if it is another
//! session, deletes the node and creates it again under the live session.
//!
//! # Empty-push protection
//! A provider list that suddenly becomes empty is more often a glitch (a
//! server restarted without data, a mass re-registration in progress) than
//! the truth, and acting on it stops all traffic. With protection on, an
//! empty list after a non-empty one is held back until it is still empty on
//! a fresh read after [`RegistryConfig::empty_confirm_delay`].

pub mod app;
pub mod dubbo;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::ops::CreateOptions;
use crate::protocol::{CreateMode, ErrorCode};
use crate::url::DubboUrl;
pub use app::Instance;
pub use dubbo::Provider;

/// How parent nodes (interface, category, app) are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentMode {
    /// Plain persistent nodes, as Dubbo creates them.
    Persistent,
    /// Container nodes: the server removes them once their last child goes.
    Container,
}

/// Settings of a [`Registry`].
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub connect_string: String,
    pub session_timeout: Duration,
    pub request_timeout: Duration,
    /// The root of the interface layout; `/dubbo` by default, `/<group>`
    /// with [`RegistryConfig::group`].
    pub root: String,
    /// The root of the application layout; `/services` by default.
    pub services_root: String,
    pub parent_mode: ParentMode,
    /// Hold back a push that would empty a non-empty list (default on).
    pub empty_protection: bool,
    /// How long an empty list must stay empty before it is pushed.
    pub empty_confirm_delay: Duration,
    /// Backoff between attempts to establish a new session.
    pub backoff: Backoff,
}

impl RegistryConfig {
    pub fn new(connect_string: impl Into<String>) -> RegistryConfig {
        RegistryConfig {
            connect_string: connect_string.into(),
            session_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            root: "/dubbo".into(),
            services_root: "/services".into(),
            parent_mode: ParentMode::Persistent,
            empty_protection: true,
            empty_confirm_delay: Duration::from_secs(3),
            backoff: Backoff {
                initial: Duration::from_millis(200),
                max: Duration::from_secs(15),
            },
        }
    }

    /// Dubbo's registry group: the interface layout lives under `/<group>`.
    pub fn group(mut self, group: &str) -> Self {
        self.root = format!("/{}", group.trim_matches('/'));
        self
    }

    pub fn root(mut self, root: impl Into<String>) -> Self {
        self.root = root.into();
        self
    }

    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    pub fn empty_protection(mut self, on: bool, confirm_delay: Duration) -> Self {
        self.empty_protection = on;
        self.empty_confirm_delay = confirm_delay;
        self
    }

    pub fn parent_mode(mut self, mode: ParentMode) -> Self {
        self.parent_mode = mode;
        self
    }

    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    async fn connect(&self) -> Result<Client> {
        Client::builder(self.connect_string.clone())
            .session_timeout(self.session_timeout)
            .request_timeout(Some(self.request_timeout))
            .connect()
            .await
    }
}

/// A node the registry keeps alive.
#[derive(Debug, Clone)]
struct Registration {
    data: Vec<u8>,
    ephemeral: bool,
}

struct Core {
    config: RegistryConfig,
    /// The current session; replaced by the supervisor after an expiry,
    /// `None` once the registry is closed.
    clients: watch::Sender<Option<Client>>,
    /// Every node registered and not unregistered, by path.
    registrations: Mutex<BTreeMap<String, Registration>>,
}

/// A Dubbo registry on one ZooKeeper ensemble. Clones share it; it closes
/// when the last clone is dropped or [`Registry::close`] is called.
#[derive(Clone)]
pub struct Registry {
    core: Arc<Core>,
    _guard: Arc<CloseOnDrop>,
}

struct CloseOnDrop(Arc<Core>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.shut_down();
    }
}

/// Transient failures worth retrying on the same or the next session.
fn transient(e: &Error) -> bool {
    matches!(
        e,
        Error::ConnectionLoss | Error::Timeout | Error::SessionExpired | Error::Closed
    )
}

/// How many times a registration is retried on transient errors before the
/// caller hears about it (the supervisor keeps it registered regardless).
const REGISTER_ATTEMPTS: u32 = 8;

impl Core {
    /// Stops the registry: subscriptions end, and the supervisor closes the
    /// session (dropping the last handle would close it too).
    fn shut_down(&self) {
        self.clients.send_replace(None);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Registration>> {
        self.registrations.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current session once it is usable; `None` once closed.
    async fn live_client(&self) -> Option<Client> {
        let mut clients = self.clients.subscribe();
        loop {
            let current = clients.borrow_and_update().clone();
            match current {
                Some(client) if !client.state().is_terminal() => return Some(client),
                None => return None,
                Some(_) => {}
            }
            if clients.changed().await.is_err() {
                return None;
            }
        }
    }

    fn parent_options(&self) -> CreateOptions {
        match self.config.parent_mode {
            ParentMode::Persistent => CreateOptions::persistent(),
            ParentMode::Container => CreateOptions::container(),
        }
    }

    /// Creates every missing ancestor of `path` (not `path` itself).
    async fn ensure_parents(&self, client: &Client, path: &str) -> Result<()> {
        let mut at = 0;
        while let Some(next) = path[at + 1..].find('/') {
            at += 1 + next;
            self.ensure_node_exists(client, &path[..at]).await?;
        }
        Ok(())
    }

    /// Creates `path` as a parent-style node unless it exists.
    async fn ensure_node_exists(&self, client: &Client, path: &str) -> Result<()> {
        match client.create(path, b"", &self.parent_options()).await {
            Ok(_) | Err(Error::Server(ErrorCode::NodeExists)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes `path` exist with `data`, owned by this session if ephemeral.
    async fn put(&self, client: &Client, path: &str, registration: &Registration) -> Result<()> {
        let options = if registration.ephemeral {
            CreateOptions::new(CreateMode::Ephemeral)
        } else {
            CreateOptions::persistent()
        };
        for _ in 0..4 {
            match client.create(path, &registration.data, &options).await {
                Ok(_) => return Ok(()),
                Err(Error::Server(ErrorCode::NoNode)) => self.ensure_parents(client, path).await?,
                Err(Error::Server(ErrorCode::NodeExists)) => {
                    let Some(stat) = client.exists(path).await? else {
                        continue;
                    };
                    if !registration.ephemeral || stat.ephemeral_owner == client.session_id() {
                        return Ok(());
                    }
                    // The trap: a node of another session (dead, or about to be
                    // reaped) would vanish later and take the registration with it.
                    tracing::warn!(
                        path,
                        owner = format_args!("{:#x}", stat.ephemeral_owner),
                        "replacing a registration left by another session"
                    );
                    match client.delete(path, Some(stat.version)).await {
                        Ok(())
                        | Err(Error::Server(ErrorCode::NoNode))
                        | Err(Error::Server(ErrorCode::BadVersion)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Server(ErrorCode::NodeExists))
    }

    async fn register(&self, path: String, registration: Registration) -> Result<String> {
        self.lock().insert(path.clone(), registration.clone());
        let mut last = Error::Closed;
        for attempt in 0..REGISTER_ATTEMPTS {
            let Some(client) = self.live_client().await else {
                return Err(Error::Closed);
            };
            match self.put(&client, &path, &registration).await {
                Ok(()) => return Ok(path),
                Err(e) if transient(&e) => {
                    last = e;
                    tokio::time::sleep(self.config.backoff.delay(attempt)).await;
                }
                Err(e) => {
                    self.lock().remove(&path);
                    return Err(e);
                }
            }
        }
        Err(last)
    }

    async fn unregister(&self, path: &str) -> Result<()> {
        self.lock().remove(path);
        let client = self.live_client().await.ok_or(Error::Closed)?;
        match client.delete(path, None).await {
            Ok(()) | Err(Error::Server(ErrorCode::NoNode)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Re-creates every registration on a new session.
    async fn reregister_all(&self, client: &Client) {
        let registrations: Vec<_> = self.lock().clone().into_iter().collect();
        for (path, registration) in registrations {
            for attempt in 0..REGISTER_ATTEMPTS {
                match self.put(client, &path, &registration).await {
                    Ok(()) => break,
                    Err(e) if transient(&e) && !client.state().is_terminal() => {
                        tokio::time::sleep(self.config.backoff.delay(attempt)).await;
                    }
                    Err(e) => {
                        tracing::warn!(path, "re-registration failed: {e}");
                        break;
                    }
                }
            }
        }
    }
}

/// Replaces the session whenever it ends for good, until the registry closes.
async fn supervise(core: Arc<Core>, mut client: Client) {
    let mut published = core.clients.subscribe();
    loop {
        let mut states = client.state_stream();
        loop {
            tokio::select! {
                state = states.next_state() => match state {
                    Some(state) if !state.is_terminal() => {}
                    _ => break,
                },
                changed = published.changed() => {
                    if changed.is_err() || published.borrow_and_update().is_none() {
                        // Closed: this task holds the last handle on the session.
                        client.close().await;
                        return;
                    }
                }
            }
        }
        if core.clients.borrow().is_none() {
            return;
        }
        tracing::warn!(state = ?client.state(), "registry session ended; starting a new one");
        let mut attempt = 0;
        client = loop {
            tokio::time::sleep(core.config.backoff.delay(attempt)).await;
            if core.clients.borrow().is_none() {
                return;
            }
            match core.config.connect().await {
                Ok(client) => break client,
                Err(e) => tracing::warn!("registry reconnect attempt {attempt} failed: {e}"),
            }
            attempt += 1;
        };
        let published = core.clients.send_if_modified(|slot| match slot {
            Some(_) => {
                *slot = Some(client.clone());
                true
            }
            None => false,
        });
        if !published {
            client.close().await;
            return;
        }
        core.reregister_all(&client).await;
    }
}

impl Registry {
    /// Connects (the first session must succeed) and starts the supervisor.
    pub async fn start(config: RegistryConfig) -> Result<Registry> {
        let client = config.connect().await?;
        let core = Arc::new(Core {
            config,
            clients: watch::Sender::new(Some(client.clone())),
            registrations: Mutex::new(BTreeMap::new()),
        });
        tokio::spawn(supervise(core.clone(), client));
        Ok(Registry {
            _guard: Arc::new(CloseOnDrop(core.clone())),
            core,
        })
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.core.config
    }

    /// The current session (it changes after an expiry).
    pub fn client(&self) -> Option<Client> {
        self.core.clients.borrow().clone()
    }

    /// Closes the session (ephemeral registrations go at once) and stops
    /// every subscription.
    pub async fn close(&self) {
        let client = self.core.clients.send_replace(None);
        if let Some(client) = client {
            client.close().await;
        }
    }

    /// The paths this registry keeps registered.
    pub fn registered(&self) -> Vec<String> {
        self.core.lock().keys().cloned().collect()
    }

    // ---- the interface layout ----

    /// Registers `url` as `/<root>/<interface>/<category>/<encoded url>`:
    /// ephemeral unless the URL says `dynamic=false`, parents created as
    /// needed. Returns the node path.
    pub async fn register(&self, url: &DubboUrl) -> Result<String> {
        let path = dubbo::url_path(&self.core.config.root, url);
        let registration = Registration {
            data: Vec::new(),
            ephemeral: dubbo::is_dynamic(url),
        };
        self.core.register(path, registration).await
    }

    /// Removes a registration made with [`Registry::register`].
    pub async fn unregister(&self, url: &DubboUrl) -> Result<()> {
        self.core
            .unregister(&dubbo::url_path(&self.core.config.root, url))
            .await
    }

    /// The live providers of `interface`, as a stream of complete snapshots.
    pub fn subscribe(&self, interface: &str) -> Subscription<Provider> {
        let path = dubbo::category_path(&self.core.config.root, interface, dubbo::PROVIDERS);
        self.watch_children(path, false, |children| {
            dubbo::decode_urls(children.iter().map(|c| c.name.as_str()))
                .into_iter()
                .map(Provider::from_url)
                .collect()
        })
    }

    /// The URLs in any category of `interface` (`routers`, `configurators`,
    /// `consumers`, ...). Empty-push protection applies to providers only.
    pub fn subscribe_category(&self, interface: &str, category: &str) -> Subscription<DubboUrl> {
        let path = dubbo::category_path(&self.core.config.root, interface, category);
        let protect = category == dubbo::PROVIDERS;
        self.spawn_watch(path, false, protect, |children| {
            dubbo::decode_urls(children.iter().map(|c| c.name.as_str()))
        })
    }

    pub fn subscribe_routers(&self, interface: &str) -> Subscription<DubboUrl> {
        self.subscribe_category(interface, dubbo::ROUTERS)
    }

    pub fn subscribe_configurators(&self, interface: &str) -> Subscription<DubboUrl> {
        self.subscribe_category(interface, dubbo::CONFIGURATORS)
    }

    // ---- the application layout ----

    /// Registers an instance as the ephemeral `/services/<app>/<ip:port>`
    /// with its JSON record. Returns the node path.
    pub async fn register_instance(&self, instance: &Instance) -> Result<String> {
        let path = format!(
            "{}/{}",
            app::app_path(&self.core.config.services_root, &instance.app),
            instance.address()
        );
        let registration = Registration {
            data: instance.to_json(),
            ephemeral: true,
        };
        self.core.register(path, registration).await
    }

    pub async fn unregister_instance(&self, instance: &Instance) -> Result<()> {
        let path = format!(
            "{}/{}",
            app::app_path(&self.core.config.services_root, &instance.app),
            instance.address()
        );
        self.core.unregister(&path).await
    }

    /// The live instances of `app`, as a stream of complete snapshots.
    pub fn subscribe_app(&self, app: &str) -> Subscription<Instance> {
        let path = app::app_path(&self.core.config.services_root, app);
        self.watch_children(path, true, |children| {
            let mut instances: Vec<Instance> = children
                .iter()
                .filter_map(|c| match Instance::from_json(c.data.as_deref()?) {
                    Ok(instance) => Some(instance),
                    Err(e) => {
                        tracing::warn!(node = c.name, "skipping an unreadable instance: {e}");
                        None
                    }
                })
                .collect();
            instances.sort_by_key(Instance::address);
            instances
        })
    }

    fn watch_children<T>(
        &self,
        path: String,
        with_data: bool,
        decode: fn(&[Child]) -> Vec<T>,
    ) -> Subscription<T>
    where
        T: Clone + PartialEq + Send + 'static,
    {
        self.spawn_watch(path, with_data, true, decode)
    }

    fn spawn_watch<T>(
        &self,
        path: String,
        with_data: bool,
        protect: bool,
        decode: fn(&[Child]) -> Vec<T>,
    ) -> Subscription<T>
    where
        T: Clone + PartialEq + Send + 'static,
    {
        let (sink, snapshots) = mpsc::unbounded_channel();
        let watcher = ChildWatcher {
            core: self.core.clone(),
            path,
            with_data,
            protect: protect && self.core.config.empty_protection,
            decode,
            sink,
        };
        Subscription {
            snapshots,
            task: tokio::spawn(watcher.run()),
        }
    }
}

/// One child of a watched node, with its data when the layout needs it.
#[derive(Debug, Clone)]
pub struct Child {
    pub name: String,
    pub data: Option<Vec<u8>>,
}

/// A stream of complete snapshots (the whole list each time it changes).
/// Dropping it stops the watching task.
#[derive(Debug)]
pub struct Subscription<T> {
    snapshots: mpsc::UnboundedReceiver<Vec<T>>,
    task: JoinHandle<()>,
}

impl<T> Subscription<T> {
    /// The next snapshot; `None` once the registry is closed.
    pub async fn next_snapshot(&mut self) -> Option<Vec<T>> {
        self.snapshots.recv().await
    }
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T> Stream for Subscription<T> {
    type Item = Vec<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<T>>> {
        self.snapshots.poll_recv(cx)
    }
}

/// The task behind a [`Subscription`]: read the children and leave a watch,
/// push the snapshot if it changed, wait for the watch, repeat, across
/// reconnects and new sessions.
struct ChildWatcher<T> {
    core: Arc<Core>,
    path: String,
    with_data: bool,
    protect: bool,
    decode: fn(&[Child]) -> Vec<T>,
    sink: mpsc::UnboundedSender<Vec<T>>,
}

impl<T: Clone + PartialEq + Send + 'static> ChildWatcher<T> {
    async fn run(self) {
        let mut last: Option<Vec<T>> = None;
        // When an empty list was first seen after a non-empty one.
        let mut held_since: Option<Instant> = None;
        let mut failures = 0;
        loop {
            let Some(client) = self.core.live_client().await else {
                return;
            };
            if held_since.is_some() {
                // The confirming read must not be served from a lagging server.
                let _ = client.sync(&self.path).await;
            }
            let (children, watch) = match self.read(&client).await {
                Ok(read) => {
                    failures = 0;
                    read
                }
                Err(Error::Server(ErrorCode::NoNode)) => {
                    // Dubbo creates the category node when subscribing, so the
                    // watch has a node to sit on.
                    if let Err(e) = self.create_path(&client).await {
                        tracing::debug!(path = self.path, "cannot create: {e}");
                        self.pause(&mut failures).await;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::debug!(path = self.path, "subscription read failed: {e}");
                    self.pause(&mut failures).await;
                    continue;
                }
            };
            let items = (self.decode)(&children);
            let was_non_empty = last.as_ref().is_some_and(|l| !l.is_empty());
            if self.protect && items.is_empty() && was_non_empty {
                let since = *held_since.get_or_insert_with(Instant::now);
                let deadline = since + self.core.config.empty_confirm_delay;
                if Instant::now() < deadline {
                    tracing::info!(path = self.path, "holding back an empty provider list");
                    tokio::select! {
                        _ = watch => {}
                        _ = tokio::time::sleep_until(deadline) => {}
                        _ = self.sink.closed() => return,
                    }
                    continue;
                }
            }
            held_since = None;
            if last.as_ref() != Some(&items) {
                if self.sink.send(items.clone()).is_err() {
                    return;
                }
                last = Some(items);
            }
            tokio::select! {
                _ = watch => {}
                _ = self.sink.closed() => return,
            }
        }
    }

    async fn read(&self, client: &Client) -> Result<(Vec<Child>, crate::OneshotWatcher)> {
        let (names, _, watch) = client.get_children_and_watch(&self.path).await?;
        let mut children = Vec::with_capacity(names.len());
        if self.with_data {
            let reads = names.iter().map(|name| {
                let path = format!("{}/{name}", self.path);
                async move { client.get_data(&path).await }
            });
            let data = futures::future::join_all(reads).await;
            for (name, data) in names.into_iter().zip(data) {
                match data {
                    Ok((data, _)) => children.push(Child {
                        name,
                        data: Some(data),
                    }),
                    // Gone between the list and the read: the watch will tell.
                    Err(Error::Server(ErrorCode::NoNode)) => {}
                    Err(e) => return Err(e),
                }
            }
        } else {
            children.extend(names.into_iter().map(|name| Child { name, data: None }));
        }
        Ok((children, watch))
    }

    async fn create_path(&self, client: &Client) -> Result<()> {
        self.core.ensure_parents(client, &self.path).await?;
        self.core.ensure_node_exists(client, &self.path).await
    }

    async fn pause(&self, failures: &mut u32) {
        let delay = self.core.config.backoff.delay(*failures);
        *failures += 1;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = self.sink.closed() => {}
        }
    }
}
