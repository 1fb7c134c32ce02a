//! The commands zkCli.sh has, with its names, flags and output.

use canopy_client::{
    AddWatchMode, Client, CreateMode, CreateOptions, OneshotWatcher, Op, WatchedEvent, WatcherType,
};
use serde_json::json;

use crate::args::*;
use crate::context::Ctx;
use crate::error::{AtPath, CliError, CliResult};
use crate::render::*;
use crate::walk::{walk, WalkOptions};
use crate::{emit_json, put, say};

/// An event as zkCli prints it.
pub fn event_line(event: &WatchedEvent) -> String {
    let state = match event.state {
        canopy_client::SessionState::Connected => "SyncConnected".to_string(),
        other => format!("{other:?}"),
    };
    format!(
        "WatchedEvent state:{state} type:{:?} path:{}",
        event.event_type, event.path
    )
}

/// A one-shot watch left by `-w`: in the shell its event prints whenever it
/// comes; from the command line the command waits for it.
async fn follow(ctx: &Ctx, watcher: OneshotWatcher) {
    if ctx.interactive {
        tokio::spawn(async move {
            let event = watcher.await;
            say!("\nWATCHER::\n\n{}", event_line(&event));
        });
    } else {
        eprintln!("waiting for the watch to fire (Ctrl-C to stop)");
        tokio::select! {
            event = watcher => say!("WATCHER::\n\n{}", event_line(&event)),
            _ = tokio::signal::ctrl_c() => {}
        }
    }
}

pub async fn ls(ctx: &mut Ctx, a: &LsArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    let json = a.common.output == Output::Json;
    if a.recursive {
        let nodes = walk(&client, &a.path, WalkOptions::default()).await?;
        if json {
            let paths: Vec<&str> = nodes.iter().map(|n| n.path.as_str()).collect();
            emit_json(&json!(paths));
        } else {
            for node in &nodes {
                say!("{}", node.path);
            }
        }
        return Ok(());
    }
    let (mut children, stat, watcher) = if a.watch {
        let (c, s, w) = client.get_children_and_watch(&a.path).await.at(&a.path)?;
        (c, s, Some(w))
    } else {
        let (c, s) = client.get_children(&a.path).await.at(&a.path)?;
        (c, s, None)
    };
    children.sort();
    if json {
        let mut value = json!({"path": a.path, "children": children});
        if a.stat {
            value["stat"] = stat_json(&stat);
        }
        emit_json(&value);
    } else {
        say!("{}", java_list(&children));
        if a.stat {
            put!("{}", stat_text(&stat));
        }
    }
    if let Some(watcher) = watcher {
        follow(ctx, watcher).await;
    }
    Ok(())
}

pub async fn get(ctx: &mut Ctx, a: &GetArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    let (data, stat, watcher) = if a.watch {
        let (d, s, w) = client.get_data_and_watch(&a.path).await.at(&a.path)?;
        (d, s, Some(w))
    } else {
        let (d, s) = client.get_data(&a.path).await.at(&a.path)?;
        (d, s, None)
    };
    if a.common.output == Output::Json {
        let mut value = data_json(&data);
        value["path"] = json!(a.path);
        if a.stat {
            value["stat"] = stat_json(&stat);
        }
        emit_json(&value);
    } else {
        if a.raw {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&data);
            let _ = out.write_all(b"\n");
        } else {
            say!("{}", data_text(&data));
        }
        if a.stat {
            put!("{}", stat_text(&stat));
        }
    }
    if let Some(watcher) = watcher {
        follow(ctx, watcher).await;
    }
    Ok(())
}

pub async fn stat(ctx: &mut Ctx, a: &StatArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    let (stat, watcher) = if a.watch {
        let (s, w) = client.exists_and_watch(&a.path).await.at(&a.path)?;
        (s, Some(w))
    } else {
        (client.exists(&a.path).await.at(&a.path)?, None)
    };
    let Some(stat) = stat else {
        return Err(CliError::new(format!("NoNode: {}", a.path)));
    };
    if a.common.output == Output::Json {
        emit_json(&json!({"path": a.path, "stat": stat_json(&stat)}));
    } else {
        put!("{}", stat_text(&stat));
    }
    if let Some(watcher) = watcher {
        follow(ctx, watcher).await;
    }
    Ok(())
}

pub async fn set(ctx: &mut Ctx, a: &SetArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    let stat = client
        .set_data(&a.path, a.data.as_bytes(), a.version)
        .await
        .at(&a.path)?;
    if a.stat {
        put!("{}", stat_text(&stat));
    }
    Ok(())
}

pub async fn create(ctx: &mut Ctx, a: &CreateArgs) -> CliResult<()> {
    let mode = match (a.ephemeral, a.sequential, a.container, a.ttl.is_some()) {
        (false, false, false, false) => CreateMode::Persistent,
        (true, false, false, false) => CreateMode::Ephemeral,
        (false, true, false, false) => CreateMode::PersistentSequential,
        (true, true, false, false) => CreateMode::EphemeralSequential,
        (false, false, true, false) => CreateMode::Container,
        (false, false, false, true) => CreateMode::PersistentWithTtl,
        (false, true, false, true) => CreateMode::PersistentSequentialWithTtl,
        _ => {
            return Err(CliError::new(
                "BadArguments: -c and -t go with no other mode flag, -e not with -t",
            ))
        }
    };
    let mut options = CreateOptions::new(mode);
    if let Some(ttl) = a.ttl {
        options = options.with_ttl(ttl);
    }
    if let Some(acl) = &a.acl {
        options = options.with_acl(
            parse_acl_list(acl).map_err(|e| CliError::new(format!("BadArguments: {e}")))?,
        );
    }
    let data = a.data.as_deref().unwrap_or("").as_bytes();
    let client = ctx.client().await?;
    let (created, _) = client.create(&a.path, data, &options).await.at(&a.path)?;
    say!("Created {created}");
    if mode.is_ephemeral() && !ctx.interactive {
        eprintln!("note: the ephemeral node goes when this command's session ends; use `canopy shell` to keep it");
    }
    Ok(())
}

pub async fn delete(ctx: &mut Ctx, a: &DeleteArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    client.delete(&a.path, a.version).await.at(&a.path)
}

/// Deletes `path` and everything under it, leaves first, `batch` deletes
/// per multi. Returns how many nodes went.
pub async fn delete_all(client: &Client, path: &str, batch: usize) -> CliResult<usize> {
    let nodes = walk(client, path, WalkOptions::default()).await?;
    let mut paths: Vec<String> = nodes.into_iter().map(|n| n.path).collect();
    paths.reverse();
    for chunk in paths.chunks(batch.max(1)) {
        let ops: Vec<Op> = chunk.iter().map(|p| Op::delete(p.clone(), None)).collect();
        if client.multi(&ops).await.is_err() {
            // Something changed under us: one at a time, tolerating what is gone.
            for p in chunk {
                match client.delete(p, None).await {
                    Ok(()) => {}
                    Err(e) if e.is(canopy_protocol::ErrorCode::NoNode) => {}
                    Err(e) => return Err(e).at(p),
                }
            }
        }
    }
    Ok(paths.len())
}

pub async fn deleteall(ctx: &mut Ctx, a: &DeleteAllArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    delete_all(&client, &a.path, a.batch).await.map(drop)
}

pub async fn get_acl(ctx: &mut Ctx, a: &GetAclArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    let (acl, stat) = client.get_acl(&a.path).await.at(&a.path)?;
    if a.common.output == Output::Json {
        let mut value = json!({"path": a.path, "acl": acl_json(&acl)});
        if a.stat {
            value["stat"] = stat_json(&stat);
        }
        emit_json(&value);
    } else {
        put!("{}", acl_text(&acl));
        if a.stat {
            put!("{}", stat_text(&stat));
        }
    }
    Ok(())
}

pub async fn set_acl(ctx: &mut Ctx, a: &SetAclArgs) -> CliResult<()> {
    let acl = parse_acl_list(&a.acl).map_err(|e| CliError::new(format!("BadArguments: {e}")))?;
    let client = ctx.client().await?;
    if a.recursive {
        let nodes = walk(&client, &a.path, WalkOptions::default()).await?;
        for node in nodes {
            client
                .set_acl(&node.path, &acl, None)
                .await
                .at(&node.path)?;
        }
        return Ok(());
    }
    let stat = client.set_acl(&a.path, &acl, a.version).await.at(&a.path)?;
    if a.stat {
        put!("{}", stat_text(&stat));
    }
    Ok(())
}

pub async fn add_auth(ctx: &mut Ctx, a: &AddAuthArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    client
        .add_auth(&a.scheme, a.auth.as_bytes())
        .await
        .at(&a.scheme)?;
    // Remembered so the shell's `connect` keeps it.
    ctx.auth.push(format!("{}:{}", a.scheme, a.auth));
    Ok(())
}

pub async fn sync(ctx: &mut Ctx, a: &PathArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    client.sync(&a.path).await.at(&a.path)?;
    say!("Sync is OK");
    Ok(())
}

pub async fn get_ephemerals(ctx: &mut Ctx, a: &OptionalPathArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    let mut paths = client.get_ephemerals(&a.path).await.at(&a.path)?;
    paths.sort();
    if a.common.output == Output::Json {
        emit_json(&json!(paths));
    } else {
        say!("{}", java_list(&paths));
    }
    Ok(())
}

pub async fn get_all_children_number(ctx: &mut Ctx, a: &PathArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    let count = client.get_all_children_number(&a.path).await.at(&a.path)?;
    if a.common.output == Output::Json {
        emit_json(&json!({"path": a.path, "count": count}));
    } else {
        say!("{count}");
    }
    Ok(())
}

pub async fn add_watch(ctx: &mut Ctx, a: &AddWatchArgs) -> CliResult<()> {
    let mode = match a.mode {
        WatchModeArg::Persistent => AddWatchMode::Persistent,
        WatchModeArg::PersistentRecursive => AddWatchMode::PersistentRecursive,
    };
    let client = ctx.client().await?;
    let mut watcher = client.add_watch(&a.path, mode).await.at(&a.path)?;
    if ctx.interactive {
        tokio::spawn(async move {
            while let Some(event) = watcher.next_event().await {
                say!("\nWATCHER::\n\n{}", event_line(&event));
            }
        });
        return Ok(());
    }
    eprintln!("watching {} ({:?}), Ctrl-C to stop", a.path, a.mode);
    let mut seen = 0;
    while a.count.is_none_or(|n| seen < n) {
        tokio::select! {
            event = watcher.next_event() => match event {
                Some(event) => say!("{}", event_line(&event)),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
        seen += 1;
    }
    Ok(())
}

pub async fn remove_watches(ctx: &mut Ctx, a: &RemoveWatchesArgs) -> CliResult<()> {
    let kind = match (a.children, a.data) {
        (true, false) => WatcherType::Children,
        (false, true) => WatcherType::Data,
        _ => WatcherType::Any,
    };
    let client = ctx.client().await?;
    client.remove_watches(&a.path, kind).await.at(&a.path)
}

pub async fn who_am_i(ctx: &mut Ctx, a: &NoArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    let infos = client.who_am_i().await.at("/")?;
    if a.common.output == Output::Json {
        let list: Vec<_> = infos
            .iter()
            .map(|i| json!({"scheme": i.auth_scheme, "user": i.user}))
            .collect();
        emit_json(&json!(list));
    } else {
        say!("Auth scheme: User");
        for info in infos {
            say!("{}: {}", info.auth_scheme, info.user);
        }
    }
    Ok(())
}

pub async fn config(ctx: &mut Ctx, a: &ConfigArgs) -> CliResult<()> {
    const CONFIG: &str = "/zookeeper/config";
    let client = ctx.client().await?;
    let (data, stat) = client.get_data(CONFIG).await.at(CONFIG)?;
    let text = String::from_utf8_lossy(&data).to_string();
    if a.common.output == Output::Json {
        let mut value = json!({"config": text});
        if a.stat {
            value["stat"] = stat_json(&stat);
        }
        emit_json(&value);
    } else {
        say!("{}", text.trim_end());
        if a.stat {
            put!("{}", stat_text(&stat));
        }
    }
    Ok(())
}
