//! The registry view: Dubbo's interface-level layout
//! (`/dubbo/<interface>/providers|consumers/<URL-encoded URL>`) and its
//! application-level layout (`/services/<app>/<ip:port>` with Curator JSON).

use canopy_client::registry::app::Instance;
use canopy_client::registry::dubbo::decode_urls;
use canopy_client::url::DubboUrl;
use canopy_client::Client;
use canopy_protocol::ErrorCode;
use globset::Glob;
use serde_json::{json, Value};

use crate::args::*;
use crate::context::Ctx;
use crate::error::{AtPath, CliError, CliResult};
use crate::render::short_age;
use crate::walk::join;
use crate::{emit_json, say};

const APPS_ROOT: &str = "/services";

/// Children of `path`, sorted; none if it does not exist.
async fn children_or_none(client: &Client, path: &str) -> CliResult<Vec<String>> {
    match client.get_children(path).await {
        Ok((mut children, _)) => {
            children.sort();
            Ok(children)
        }
        Err(e) if e.is(ErrorCode::NoNode) => Ok(Vec::new()),
        Err(e) => Err(e).at(path),
    }
}

/// One interface with its decoded URLs per category.
struct Interface {
    name: String,
    providers: Vec<DubboUrl>,
    consumers: Vec<DubboUrl>,
    others: Vec<(String, Vec<DubboUrl>)>,
}

async fn read_interface(client: &Client, root: &str, name: &str) -> CliResult<Interface> {
    let base = join(root, name);
    let mut interface = Interface {
        name: name.to_string(),
        providers: Vec::new(),
        consumers: Vec::new(),
        others: Vec::new(),
    };
    for category in children_or_none(client, &base).await? {
        let names = children_or_none(client, &join(&base, &category)).await?;
        let urls = decode_urls(names.iter().map(String::as_str));
        match category.as_str() {
            "providers" => interface.providers = urls,
            "consumers" => interface.consumers = urls,
            _ => interface.others.push((category, urls)),
        }
    }
    Ok(interface)
}

fn age_of(url: &DubboUrl, now: i64) -> String {
    url.timestamp_ms()
        .map_or("-".to_string(), |t| short_age(now - t))
}

fn or_dash(value: Option<&str>) -> &str {
    value.filter(|v| !v.is_empty()).unwrap_or("-")
}

fn url_json(url: &DubboUrl) -> Value {
    json!({
        "address": url.address(),
        "protocol": url.protocol,
        "version": url.version(),
        "group": url.group(),
        "weight": url.weight(),
        "application": url.param("application"),
        "timestamp": url.timestamp_ms(),
        "url": url.to_string(),
        "params": url.params,
    })
}

pub async fn services(ctx: &mut Ctx, a: &ServicesArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    if let Some(ServicesCommand::Show { interface }) = &a.show {
        return show(&client, a, interface).await;
    }
    let glob = match &a.interface {
        Some(g) => Some(
            Glob::new(g)
                .map_err(|e| CliError::new(format!("BadArguments: --interface: {e}")))?
                .compile_matcher(),
        ),
        None => None,
    };
    let app_matches = |url: &DubboUrl| {
        a.app
            .as_deref()
            .is_none_or(|app| url.param("application") == Some(app))
    };
    let mut interfaces = Vec::new();
    for name in children_or_none(&client, &a.root).await? {
        if glob.as_ref().is_some_and(|g| !g.is_match(&name)) {
            continue;
        }
        let mut interface = read_interface(&client, &a.root, &name).await?;
        interface.providers.retain(app_matches);
        interface.consumers.retain(app_matches);
        if a.app.is_some() && interface.providers.is_empty() && interface.consumers.is_empty() {
            continue;
        }
        interfaces.push(interface);
    }
    let mut apps = Vec::new();
    if a.interface.is_none() {
        for app in children_or_none(&client, APPS_ROOT).await? {
            if a.app.as_deref().is_some_and(|want| want != app) {
                continue;
            }
            let base = join(APPS_ROOT, &app);
            let mut instances = Vec::new();
            for id in children_or_none(&client, &base).await? {
                let path = join(&base, &id);
                match client.get_data(&path).await {
                    Ok((data, _)) => instances.push((id, Instance::from_json(&data).ok())),
                    Err(e) if e.is(ErrorCode::NoNode) => {}
                    Err(e) => return Err(e).at(&path),
                }
            }
            apps.push((app, instances));
        }
    }
    let now = chrono::Utc::now().timestamp_millis();
    if a.common.output == Output::Json {
        let list: Vec<_> = interfaces
            .iter()
            .map(|i| {
                json!({
                    "interface": i.name,
                    "providers": i.providers.iter().map(url_json).collect::<Vec<_>>(),
                    "consumers": i.consumers.iter().map(url_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        let app_list: Vec<_> = apps
            .iter()
            .map(|(app, instances)| {
                json!({
                    "application": app,
                    "instances": instances.iter().map(|(id, inst)| json!({
                        "id": id,
                        "address": inst.as_ref().map(Instance::address),
                        "registered": inst.as_ref().map(|i| i.registration_time_ms),
                        "metadata": inst.as_ref().map(|i| i.metadata.clone()),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        emit_json(&json!({"interfaces": list, "applications": app_list}));
        return Ok(());
    }
    for i in &interfaces {
        say!("{}", i.name);
        say!("  providers ({})", i.providers.len());
        if !i.providers.is_empty() {
            say!(
                "    {:<22} {:<9} {:<10} {:<10} {:>6}  {:<20} {}",
                "ADDRESS",
                "PROTOCOL",
                "VERSION",
                "GROUP",
                "WEIGHT",
                "APPLICATION",
                "AGE"
            );
        }
        for url in &i.providers {
            say!(
                "    {:<22} {:<9} {:<10} {:<10} {:>6}  {:<20} {}",
                url.address(),
                url.protocol,
                or_dash(url.version()),
                or_dash(url.group()),
                url.weight(),
                or_dash(url.param("application")),
                age_of(url, now)
            );
        }
        say!("  consumers ({})", i.consumers.len());
        if !i.consumers.is_empty() {
            say!(
                "    {:<22} {:<10} {:<10} {:<20} {}",
                "ADDRESS",
                "VERSION",
                "GROUP",
                "APPLICATION",
                "AGE"
            );
        }
        for url in &i.consumers {
            say!(
                "    {:<22} {:<10} {:<10} {:<20} {}",
                url.host,
                or_dash(url.version()),
                or_dash(url.group()),
                or_dash(url.param("application")),
                age_of(url, now)
            );
        }
        for (category, urls) in &i.others {
            if !urls.is_empty() {
                say!("  {category} ({})", urls.len());
            }
        }
    }
    for (app, instances) in &apps {
        say!("application {app} ({} instances)", instances.len());
        for (id, inst) in instances {
            match inst {
                Some(inst) => say!(
                    "    {:<22} registered {} ago  revision {}",
                    inst.address(),
                    short_age(now - inst.registration_time_ms),
                    inst.metadata
                        .get("dubbo.metadata.revision")
                        .map_or("-", String::as_str)
                ),
                None => say!("    {id:<22} (data is not a service instance)"),
            }
        }
    }
    if interfaces.is_empty() && apps.is_empty() {
        say!("no services under {} or {APPS_ROOT}", a.root);
    }
    Ok(())
}

async fn show(client: &Client, a: &ServicesArgs, name: &str) -> CliResult<()> {
    let base = join(&a.root, name);
    if client.exists(&base).await.at(&base)?.is_none() {
        return Err(CliError::new(format!("NoNode: {base}")));
    }
    let interface = read_interface(client, &a.root, name).await?;
    let mut categories = vec![
        ("providers".to_string(), interface.providers),
        ("consumers".to_string(), interface.consumers),
    ];
    categories.extend(interface.others);
    if a.common.output == Output::Json {
        let mut value = json!({"interface": name});
        for (category, urls) in &categories {
            value[category] = json!(urls.iter().map(url_json).collect::<Vec<_>>());
        }
        emit_json(&value);
        return Ok(());
    }
    say!("{name}");
    for (category, urls) in &categories {
        say!("  {category} ({})", urls.len());
        for url in urls {
            say!("    {}", url.address());
            say!("      url: {url}");
            for (key, value) in &url.params {
                say!("      {key} = {value}");
            }
        }
    }
    Ok(())
}
