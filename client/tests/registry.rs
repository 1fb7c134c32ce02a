//! The Dubbo registry layer over a real server: register, subscribe and
//! unregister in both layouts, other categories, the configurable root,
//! re-registration after session expiry, the NodeExists trap and empty-push
//! protection.

mod common;

use std::time::Duration;

use canopy_client::registry::{
    dubbo, Instance, ParentMode, Provider, Registry, RegistryConfig, Subscription,
};
use canopy_client::url::DubboUrl;
use canopy_client::{Backoff, CreateOptions, SessionState};
use common::{
    connect, eventually, server, unique, wait_for_state, within, Proxy, SHORT_SESSION, WAIT,
};

fn config(connect_string: &str) -> RegistryConfig {
    let mut config = RegistryConfig::new(connect_string)
        .root(unique("dubbo"))
        .session_timeout(common::LONG_SESSION)
        .backoff(Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
        });
    config.request_timeout = WAIT;
    config
}

async fn start(config: RegistryConfig) -> Registry {
    within("registry start", Registry::start(config))
        .await
        .expect("registry starts")
}

fn provider_url(interface: &str, port: u16, weight: u32) -> DubboUrl {
    DubboUrl::parse(&format!(
        "dubbo://127.0.0.1:{port}/{interface}?anyhost=true&application=demo&interface={interface}\
         &methods=hello&version=1.0.0&weight={weight}&warmup=1000&timestamp=1700000000000"
    ))
    .expect("valid url")
}

/// Waits for a snapshot satisfying `wanted`, skipping others.
async fn snapshot_where<T: std::fmt::Debug>(
    subscription: &mut Subscription<T>,
    what: &str,
    wanted: impl Fn(&[T]) -> bool,
) -> Vec<T> {
    within(what, async {
        loop {
            let snapshot = subscription
                .next_snapshot()
                .await
                .expect("subscription open");
            if wanted(&snapshot) {
                return snapshot;
            }
        }
    })
    .await
}

fn ports(providers: &[Provider]) -> Vec<u16> {
    providers.iter().map(|p| p.port).collect()
}

#[tokio::test]
async fn register_subscribe_unregister() {
    let config = config(&server().connect_string());
    let root = config.root.clone();
    let provider = start(config.clone()).await;
    let consumer = start(config).await;
    let interface = "org.example.Greeter";
    let a = provider_url(interface, 20001, 200);
    let b = provider_url(interface, 20002, 50);

    let mut subscription = consumer.subscribe(interface);
    let first = within("first snapshot", subscription.next_snapshot())
        .await
        .unwrap();
    assert!(first.is_empty());

    let path = provider.register(&a).await.unwrap();
    assert_eq!(path, dubbo::url_path(&root, &a));
    assert!(path.starts_with(&format!(
        "{root}/{interface}/providers/dubbo%3A%2F%2F127.0.0.1%3A20001"
    )));
    provider.register(&b).await.unwrap();
    let both = snapshot_where(&mut subscription, "two providers", |s| s.len() == 2).await;
    assert_eq!(ports(&both), vec![20001, 20002]);
    let first = &both[0];
    assert_eq!(
        (
            first.protocol.as_str(),
            first.host.as_str(),
            first.interface.as_str()
        ),
        ("dubbo", "127.0.0.1", interface)
    );
    assert_eq!((first.weight, first.warmup_ms), (200, 1000));
    assert_eq!(first.version.as_deref(), Some("1.0.0"));
    assert_eq!(first.timestamp_ms, Some(1_700_000_000_000));
    assert_eq!(first.params["application"], "demo");

    let client = connect().await;
    let stat = client.exists(&path).await.unwrap().expect("registered");
    assert_eq!(
        stat.ephemeral_owner,
        provider.client().unwrap().session_id()
    );

    provider.unregister(&a).await.unwrap();
    let one = snapshot_where(&mut subscription, "one provider", |s| s.len() == 1).await;
    assert_eq!(ports(&one), vec![20002]);
    assert_eq!(client.exists(&path).await.unwrap(), None);
    assert_eq!(provider.registered().len(), 1);
}

#[tokio::test]
async fn routers_configurators_and_group() {
    let config = config(&server().connect_string()).group(&unique("grp")[1..]);
    let root = config.root.clone();
    let registry = start(config.parent_mode(ParentMode::Container)).await;
    let interface = "org.example.Routed";
    let route = DubboUrl::parse(&format!(
        "route://0.0.0.0/{interface}?category=routers&dynamic=false&rule=host%3D1.2.3.4"
    ))
    .unwrap();
    let mut routers = registry.subscribe_routers(interface);
    let mut configurators = registry.subscribe_configurators(interface);
    assert!(within("routers", routers.next_snapshot())
        .await
        .unwrap()
        .is_empty());
    assert!(within("configurators", configurators.next_snapshot())
        .await
        .unwrap()
        .is_empty());
    let path = registry.register(&route).await.unwrap();
    assert!(
        path.starts_with(&format!("{root}/{interface}/routers/route%3A%2F%2F")),
        "{path}"
    );
    let snapshot = snapshot_where(&mut routers, "a router", |s| s.len() == 1).await;
    assert_eq!(snapshot[0].param("rule"), route.param("rule"));
    // dynamic=false: a persistent node.
    let client = connect().await;
    assert_eq!(
        client.exists(&path).await.unwrap().unwrap().ephemeral_owner,
        0
    );

    let config_url = DubboUrl::parse(&format!(
        "override://0.0.0.0/{interface}?category=configurators&dynamic=false&weight=1"
    ))
    .unwrap();
    registry.register(&config_url).await.unwrap();
    let snapshot = snapshot_where(&mut configurators, "a configurator", |s| s.len() == 1).await;
    assert_eq!(snapshot[0].protocol, "override");
}

#[tokio::test]
async fn reregisters_and_resubscribes_after_expiry() {
    let proxy = Proxy::start(server().addr).await;
    let mut config = config(&proxy.connect_string());
    config.session_timeout = SHORT_SESSION;
    let direct = RegistryConfig {
        connect_string: server().connect_string(),
        ..config.clone()
    };
    let registry = start(config).await;
    let other = start(direct).await;
    let interface = "org.example.Survivor";
    let url = provider_url(interface, 20010, 100);
    let path = registry.register(&url).await.unwrap();
    let mut subscription = registry.subscribe(interface);
    snapshot_where(&mut subscription, "own registration", |s| s.len() == 1).await;

    let observer = connect().await;
    let old_session = registry.client().unwrap().session_id();
    let mut states = registry.client().unwrap().state_stream();
    proxy.set_blocked(true);
    proxy.cut();
    eventually("the session to expire on the server", || async {
        observer
            .exists(&path)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    proxy.set_blocked(false);
    wait_for_state(&mut states, SessionState::Expired).await;

    // Re-registered under a new session, without being asked.
    let stat = eventually("re-registration", || async {
        observer.exists(&path).await.unwrap()
    })
    .await;
    let new_session = registry.client().unwrap().session_id();
    assert_ne!(new_session, old_session);
    assert_eq!(stat.ephemeral_owner, new_session);

    // The subscription is armed on the new session too.
    other
        .register(&provider_url(interface, 20011, 100))
        .await
        .unwrap();
    let snapshot = snapshot_where(&mut subscription, "new provider after expiry", |s| {
        s.len() == 2
    })
    .await;
    assert_eq!(ports(&snapshot), vec![20010, 20011]);
}

#[tokio::test]
async fn replaces_a_node_left_by_another_session() {
    let config = config(&server().connect_string());
    let root = config.root.clone();
    let interface = "org.example.Trap";
    let url = provider_url(interface, 20020, 100);
    let path = dubbo::url_path(&root, &url);

    // A "previous incarnation" registers the same URL, then loses its network:
    // its session lives on for a while on the server.
    let proxy = Proxy::start(server().addr).await;
    let ghost = common::connect_to(&proxy.connect_string(), SHORT_SESSION).await;
    let parent = &path[..path.rfind('/').unwrap()];
    for (at, _) in parent.match_indices('/').skip(1) {
        let _ = ghost
            .create(&parent[..at], b"", &CreateOptions::persistent())
            .await;
    }
    ghost
        .create(parent, b"", &CreateOptions::persistent())
        .await
        .unwrap();
    ghost
        .create(&path, b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    let marker = unique("ghost-marker");
    ghost
        .create(&marker, b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    let ghost_session = ghost.session_id();
    proxy.set_blocked(true);
    proxy.cut();

    let registry = start(config).await;
    registry.register(&url).await.unwrap();
    let observer = connect().await;
    let live = registry.client().unwrap().session_id();
    assert_eq!(
        observer
            .exists(&path)
            .await
            .unwrap()
            .unwrap()
            .ephemeral_owner,
        live
    );

    // Once the ghost's session expires, the registration is still there.
    let mut states = ghost.state_stream();
    eventually("the ghost session to expire", || async {
        observer
            .exists(&marker)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    proxy.set_blocked(false);
    wait_for_state(&mut states, SessionState::Expired).await;
    let stat = observer
        .exists(&path)
        .await
        .unwrap()
        .expect("still registered");
    assert_eq!(stat.ephemeral_owner, live);
    assert_ne!(live, ghost_session);
}

#[tokio::test]
async fn empty_push_protection_holds_back_an_empty_list() {
    let base = config(&server().connect_string());
    let provider = start(base.clone()).await;
    let interface = "org.example.Guarded";
    let a = provider_url(interface, 20030, 100);
    let b = provider_url(interface, 20031, 100);
    provider.register(&a).await.unwrap();

    // Protected, with a confirmation delay far beyond the test: the empty
    // list is never pushed, the next real list is.
    let guarded = start(
        base.clone()
            .empty_protection(true, Duration::from_secs(600)),
    )
    .await;
    let mut held = guarded.subscribe(interface);
    snapshot_where(&mut held, "a", |s| s.len() == 1).await;

    // Unprotected: the empty list comes through.
    let naive = start(base.clone().empty_protection(false, Duration::ZERO)).await;
    let mut raw = naive.subscribe(interface);
    snapshot_where(&mut raw, "a", |s| s.len() == 1).await;

    // Protected with a short delay: the empty list comes once confirmed.
    let patient = start(base.empty_protection(true, Duration::from_millis(300))).await;
    let mut confirmed = patient.subscribe(interface);
    snapshot_where(&mut confirmed, "a", |s| s.len() == 1).await;

    provider.unregister(&a).await.unwrap();
    let empty = within("raw empty push", raw.next_snapshot()).await.unwrap();
    assert!(empty.is_empty());
    let empty = within("confirmed empty push", confirmed.next_snapshot())
        .await
        .unwrap();
    assert!(empty.is_empty());

    provider.register(&b).await.unwrap();
    let next = within("held subscription", held.next_snapshot())
        .await
        .unwrap();
    assert_eq!(
        ports(&next),
        vec![20031],
        "the empty list must have been held back"
    );
}

#[tokio::test]
async fn application_level_instances() {
    let mut config = config(&server().connect_string());
    config.services_root = unique("services");
    let services = config.services_root.clone();
    let registry = start(config.clone()).await;
    let watcher = start(config).await;
    let app = "shop";
    let one = Instance::new(app, "127.0.0.1", 20040).with_metadata("dubbo.metadata.revision", "r1");
    let two = Instance::new(app, "127.0.0.1", 20041).with_metadata("dubbo.metadata.revision", "r2");

    let mut subscription = watcher.subscribe_app(app);
    let path = registry.register_instance(&one).await.unwrap();
    assert_eq!(path, format!("{services}/{app}/127.0.0.1:20040"));
    registry.register_instance(&two).await.unwrap();
    let both = snapshot_where(&mut subscription, "two instances", |s| s.len() == 2).await;
    assert_eq!(both, vec![one.clone(), two.clone()]);

    let client = connect().await;
    let (json, stat) = client.get_data(&path).await.unwrap();
    assert_eq!(
        stat.ephemeral_owner,
        registry.client().unwrap().session_id()
    );
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        value["payload"]["metadata"]["dubbo.metadata.revision"],
        "r1"
    );
    assert_eq!(value["id"], "127.0.0.1:20040");

    registry.unregister_instance(&one).await.unwrap();
    let left = snapshot_where(&mut subscription, "one instance", |s| s.len() == 1).await;
    assert_eq!(left, vec![two]);
}
