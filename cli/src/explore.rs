//! Looking at a subtree as a whole: `tree`, `find`, `grep`, `du`, `watch`.

use std::collections::HashMap;

use canopy_client::AddWatchMode;
use globset::Glob;
use regex::RegexBuilder;
use serde_json::json;

use crate::args::*;
use crate::context::Ctx;
use crate::error::{AtPath, CliError, CliResult};
use crate::render::*;
use crate::walk::{walk, Node, WalkOptions};
use crate::{emit_json, put, say};

/// `1 child`, `3 children`.
fn children_label(n: i32) -> String {
    if n == 1 {
        "1 child".to_string()
    } else {
        format!("{n} children")
    }
}

/// The annotation after a node's name in `tree`.
fn tree_label(node: &Node) -> String {
    let mut label = format!(
        "({}, {} B)",
        children_label(node.stat.num_children),
        node.stat.data_length
    );
    match node.stat.kind() {
        NodeKind::Ephemeral(owner) => label.push_str(&format!(" [ephemeral 0x{owner:x}]")),
        NodeKind::Container => label.push_str(" [container]"),
        NodeKind::Ttl(ms) => label.push_str(&format!(" [ttl {ms} ms]")),
        NodeKind::Persistent => {}
    }
    label
}

/// Draws walked nodes (depth-first order) with box characters.
pub fn draw_tree(nodes: &[Node]) -> String {
    let mut out = String::new();
    // For each depth: does the ancestor at that depth have later siblings?
    let mut open: Vec<bool> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if node.depth == 0 {
            out.push_str(&format!("{} {}\n", node.path, tree_label(node)));
            continue;
        }
        // Last among its siblings if no later node at this depth comes
        // before one at a shallower depth.
        let last = !nodes[i + 1..]
            .iter()
            .take_while(|n| n.depth >= node.depth)
            .any(|n| n.depth == node.depth);
        open.truncate(node.depth - 1);
        let mut line = String::new();
        for &more in &open {
            line.push_str(if more { "│   " } else { "    " });
        }
        line.push_str(if last { "└── " } else { "├── " });
        out.push_str(&format!("{line}{} {}\n", node.name(), tree_label(node)));
        open.push(!last);
    }
    out
}

pub async fn tree(ctx: &mut Ctx, a: &TreeArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    let options = WalkOptions {
        depth: a.depth,
        ..WalkOptions::default()
    };
    let nodes = walk(&client, &a.path, options).await?;
    if a.common.output == Output::Json {
        emit_json(&nested_json(&nodes));
    } else {
        put!("{}", draw_tree(&nodes));
    }
    Ok(())
}

/// The walked subtree as nested JSON objects.
fn nested_json(nodes: &[Node]) -> serde_json::Value {
    fn build(nodes: &[Node], at: &mut usize) -> serde_json::Value {
        let node = &nodes[*at];
        *at += 1;
        let mut children = Vec::new();
        while *at < nodes.len() && nodes[*at].depth > node.depth {
            children.push(build(nodes, at));
        }
        json!({
            "path": node.path,
            "name": node.name(),
            "numChildren": node.stat.num_children,
            "dataLength": node.stat.data_length,
            "kind": node.stat.kind().name(),
            "children": children,
        })
    }
    if nodes.is_empty() {
        return json!(null);
    }
    build(nodes, &mut 0)
}

pub async fn find(ctx: &mut Ctx, a: &FindArgs) -> CliResult<()> {
    let name = match &a.name {
        Some(glob) => Some(
            Glob::new(glob)
                .map_err(|e| CliError::new(format!("BadArguments: --name {glob:?}: {e}")))?
                .compile_matcher(),
        ),
        None => None,
    };
    let data = match &a.data {
        Some(pattern) => Some(
            regex::bytes::Regex::new(pattern)
                .map_err(|e| CliError::new(format!("BadArguments: --data: {e}")))?,
        ),
        None => None,
    };
    let client = ctx.client().await?;
    let options = WalkOptions {
        data: data.is_some(),
        depth: a.depth,
        ..WalkOptions::default()
    };
    let nodes = walk(&client, &a.path, options).await?;
    let matches: Vec<&Node> = nodes
        .iter()
        .filter(|n| name.as_ref().is_none_or(|g| g.is_match(n.name())))
        .filter(|n| data.as_ref().is_none_or(|r| r.is_match(&n.data)))
        .filter(|n| !a.ephemeral || n.stat.kind().is_ephemeral())
        .collect();
    if a.common.output == Output::Json {
        let paths: Vec<&str> = matches.iter().map(|n| n.path.as_str()).collect();
        emit_json(&json!(paths));
    } else {
        for node in matches {
            say!("{}", node.path);
        }
    }
    Ok(())
}

pub async fn grep(ctx: &mut Ctx, a: &GrepArgs) -> CliResult<()> {
    let pattern = RegexBuilder::new(&a.pattern)
        .case_insensitive(a.ignore_case)
        .build()
        .map_err(|e| CliError::new(format!("BadArguments: {e}")))?;
    let client = ctx.client().await?;
    let options = WalkOptions {
        data: true,
        ..WalkOptions::default()
    };
    let nodes = walk(&client, &a.path, options).await?;
    let mut hits = Vec::new();
    for node in &nodes {
        // Binary data is searched as lossy text, so ASCII inside it still matches.
        let text = String::from_utf8_lossy(&node.data);
        let lines: Vec<&str> = text.lines().filter(|l| pattern.is_match(l)).collect();
        if !lines.is_empty() {
            hits.push((
                node.path.as_str(),
                lines.into_iter().map(str::to_string).collect::<Vec<_>>(),
            ));
        }
    }
    if a.common.output == Output::Json {
        let list: Vec<_> = hits
            .iter()
            .map(|(path, lines)| json!({"path": path, "lines": lines}))
            .collect();
        emit_json(&json!(list));
    } else {
        for (path, lines) in hits {
            if a.paths_only {
                say!("{path}");
            } else {
                for line in lines {
                    say!("{path}: {line}");
                }
            }
        }
    }
    Ok(())
}

/// Nodes and data bytes of one subtree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub nodes: u64,
    pub bytes: u64,
}

/// The usage of every walked node's subtree.
pub fn usage(nodes: &[Node]) -> HashMap<String, Usage> {
    let mut totals: HashMap<String, Usage> = HashMap::new();
    // Deepest first, so children are summed before their parents.
    let mut order: Vec<&Node> = nodes.iter().collect();
    order.sort_by_key(|n| std::cmp::Reverse(n.depth));
    for node in order {
        let own = totals.entry(node.path.clone()).or_default();
        own.nodes += 1;
        own.bytes += node.stat.data_length.max(0) as u64;
        let own = *own;
        if node.depth > 0 {
            let parent = match node.path.rfind('/') {
                Some(0) => "/".to_string(),
                Some(at) => node.path[..at].to_string(),
                None => continue,
            };
            let up = totals.entry(parent).or_default();
            up.nodes += own.nodes;
            up.bytes += own.bytes;
        }
    }
    totals
}

pub async fn du(ctx: &mut Ctx, a: &DuArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    let nodes = walk(&client, &a.path, WalkOptions::default()).await?;
    let totals = usage(&nodes);
    let mut rows: Vec<(&str, Usage)> = nodes
        .iter()
        .filter(|n| n.depth >= 1 && n.depth <= a.depth)
        .map(|n| (n.path.as_str(), totals[&n.path]))
        .collect();
    rows.sort_by(|x, y| {
        y.1.bytes
            .cmp(&x.1.bytes)
            .then(y.1.nodes.cmp(&x.1.nodes))
            .then(x.0.cmp(y.0))
    });
    let root = &nodes[0];
    let total = totals[&root.path];
    if a.common.output == Output::Json {
        let list: Vec<_> = rows
            .iter()
            .map(|(p, u)| json!({"path": p, "nodes": u.nodes, "bytes": u.bytes}))
            .collect();
        emit_json(&json!({
            "path": root.path,
            "nodes": total.nodes,
            "bytes": total.bytes,
            "subtrees": list,
        }));
    } else {
        say!("{:>12} {:>10}  PATH", "BYTES", "NODES");
        for (path, u) in rows {
            say!("{:>12} {:>10}  {path}", u.bytes, u.nodes);
        }
        say!(
            "{:>12} {:>10}  {} (total)",
            total.bytes,
            total.nodes,
            root.path
        );
    }
    Ok(())
}

pub async fn watch(ctx: &mut Ctx, a: &WatchArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    let mode = if a.recursive {
        AddWatchMode::PersistentRecursive
    } else {
        AddWatchMode::Persistent
    };
    let mut watcher = client.add_watch(&a.path, mode).await.at(&a.path)?;
    eprintln!(
        "watching {}{}; Ctrl-C to stop",
        a.path,
        if a.recursive {
            " and everything under it"
        } else {
            ""
        }
    );
    let mut seen = 0;
    while a.count.is_none_or(|n| seen < n) {
        let event = tokio::select! {
            event = watcher.next_event() => event,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(event) = event else { break };
        let now = chrono::Utc::now().timestamp_millis();
        if a.common.output == Output::Json {
            say!(
                "{}",
                json!({"time": iso_time(now), "type": format!("{:?}", event.event_type), "path": event.path})
            );
        } else {
            say!(
                "{} {:<20} {}",
                iso_time(now),
                format!("{:?}", event.event_type),
                event.path
            );
        }
        seen += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_client::Stat;

    fn node(path: &str, depth: usize, children: i32, bytes: i32) -> Node {
        Node {
            path: path.into(),
            depth,
            stat: Stat {
                num_children: children,
                data_length: bytes,
                ..Stat::default()
            },
            children: Vec::new(),
            data: Vec::new(),
            acl: Vec::new(),
        }
    }

    #[test]
    fn tree_lines_and_usage() {
        let nodes = vec![
            node("/a", 0, 2, 0),
            node("/a/b", 1, 1, 3),
            node("/a/b/c", 2, 0, 4),
            node("/a/d", 1, 0, 5),
        ];
        assert_eq!(
            draw_tree(&nodes),
            "/a (2 children, 0 B)\n├── b (1 child, 3 B)\n│   └── c (0 children, 4 B)\n└── d (0 children, 5 B)\n"
        );
        let totals = usage(&nodes);
        assert_eq!(
            totals["/a"],
            Usage {
                nodes: 4,
                bytes: 12
            }
        );
        assert_eq!(totals["/a/b"], Usage { nodes: 2, bytes: 7 });
    }
}
