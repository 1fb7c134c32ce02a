//! Moving subtrees between servers: `export` writes a subtree as JSON,
//! `import` creates it elsewhere, `diff` compares two subtrees.
//!
//! The export format (version 1):
//! ```json
//! { "format": "canopy-export", "version": 1, "root": "/dubbo",
//!   "nodes": [ { "path": "/", "kind": "persistent", "encoding": "utf8",
//!                "data": "...", "acl": ["world:anyone:cdrwa"] }, ... ] }
//! ```
//! Paths are relative to the exported root (`/` is the root itself) and
//! parents come before their children. `encoding` is `utf8` or `base64`;
//! `kind` is `persistent`, `ephemeral`, `container` or `ttl` (with `ttl_ms`).
//! ZooKeeper 3.8 and Canopy report `ephemeralOwner` 0 for containers and TTL
//! nodes, so exports from them carry those as `persistent`; a hand-written
//! file may still ask for the other kinds.

use std::collections::BTreeMap;

use base64::Engine as _;
use canopy_client::{Acl, Client, CreateMode, CreateOptions};
use canopy_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::args::*;
use crate::context::{connect, Ctx};
use crate::error::{AtPath, CliError, CliResult};
use crate::render::*;
use crate::walk::{normalize, rebase, relative, walk, Node, WalkOptions};
use crate::{emit_json, say, Outcome};

const FORMAT: &str = "canopy-export";

/// Writes in flight at once during an import.
const PIPELINE: usize = 256;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportFile {
    pub format: String,
    pub version: u32,
    /// The exported path, as the source client saw it.
    pub root: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_at: Option<String>,
    pub nodes: Vec<ExportNode>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportNode {
    pub path: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<i64>,
    pub encoding: String,
    pub data: String,
    pub acl: Vec<String>,
}

impl ExportNode {
    fn from_node(root: &str, node: &Node) -> ExportNode {
        let kind = node.stat.kind();
        let (encoding, data) = match std::str::from_utf8(&node.data) {
            Ok(text) => ("utf8", text.to_string()),
            Err(_) => (
                "base64",
                base64::engine::general_purpose::STANDARD.encode(&node.data),
            ),
        };
        ExportNode {
            path: relative(root, &node.path),
            kind: kind.name().to_string(),
            ttl_ms: match kind {
                NodeKind::Ttl(ms) => Some(ms),
                _ => None,
            },
            encoding: encoding.to_string(),
            data,
            acl: node.acl.iter().map(acl_spec).collect(),
        }
    }

    pub fn bytes(&self) -> CliResult<Vec<u8>> {
        match self.encoding.as_str() {
            "utf8" => Ok(self.data.clone().into_bytes()),
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(&self.data)
                .map_err(|e| CliError::new(format!("bad base64 data at {}: {e}", self.path))),
            other => Err(CliError::new(format!(
                "unknown encoding {other:?} at {}",
                self.path
            ))),
        }
    }

    pub fn acls(&self) -> CliResult<Vec<Acl>> {
        parse_acl_list(&self.acl.join(","))
            .map_err(|e| CliError::new(format!("{e} at {}", self.path)))
    }
}

/// ZooKeeper's own nodes are not data to copy.
fn is_system(path: &str) -> bool {
    path == "/zookeeper" || path.starts_with("/zookeeper/")
}

/// Reads a subtree with data and ACLs into the export format.
pub async fn export_tree(client: &Client, server: &str, root: &str) -> CliResult<ExportFile> {
    let options = WalkOptions {
        data: true,
        acl: true,
        depth: None,
    };
    let root = normalize(root);
    let nodes = walk(client, &root, options).await?;
    Ok(ExportFile {
        format: FORMAT.to_string(),
        version: 1,
        root: root.clone(),
        source: Some(server.to_string()),
        exported_at: Some(iso_time(chrono::Utc::now().timestamp_millis())),
        nodes: nodes
            .iter()
            .filter(|n| !is_system(&n.path))
            .map(|n| ExportNode::from_node(&root, n))
            .collect(),
    })
}

pub async fn export(ctx: &mut Ctx, a: &ExportArgs) -> CliResult<()> {
    let client = ctx.client().await?;
    let file = export_tree(&client, &ctx.server, &a.path).await?;
    // Straight from the struct, so the fields keep their documented order.
    say!(
        "{}",
        serde_json::to_string_pretty(&file).unwrap_or_default()
    );
    eprintln!("exported {} nodes from {}", file.nodes.len(), file.root);
    Ok(())
}

fn read_export(name: &str) -> CliResult<ExportFile> {
    let text = if name == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(name)
    }
    .map_err(|e| CliError::new(format!("cannot read {name}: {e}")))?;
    let file: ExportFile = serde_json::from_str(&text)
        .map_err(|e| CliError::new(format!("{name} is not a canopy export: {e}")))?;
    if file.format != FORMAT || file.version != 1 {
        return Err(CliError::new(format!(
            "{name}: unsupported format {:?} version {}",
            file.format, file.version
        )));
    }
    Ok(file)
}

/// The mode to create an exported node with.
fn create_options(node: &ExportNode, policy: EphemeralPolicy) -> Option<CreateOptions> {
    let mode = match (node.kind.as_str(), policy) {
        ("ephemeral", EphemeralPolicy::Skip) => return None,
        ("container", _) => CreateMode::Container,
        ("ttl", _) if node.ttl_ms.is_some_and(|t| t > 0) => CreateMode::PersistentWithTtl,
        _ => CreateMode::Persistent,
    };
    let mut options = CreateOptions::new(mode);
    if mode == CreateMode::PersistentWithTtl {
        options = options.with_ttl(node.ttl_ms.unwrap_or(1));
    }
    Some(options)
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub created: usize,
    pub updated: usize,
    pub skipped_ephemeral: usize,
}

/// Creates the nodes of `file` under `to`. Without `overwrite`, nothing is
/// written if any node exists already (except the target root itself when
/// it is an empty placeholder). ACLs are set after every node exists,
/// children first, so a restrictive ACL on a parent cannot block its children.
pub async fn import_tree(
    client: &Client,
    file: &ExportFile,
    to: &str,
    overwrite: bool,
    policy: EphemeralPolicy,
) -> CliResult<ImportReport> {
    let mut report = ImportReport::default();
    let mut planned = Vec::new();
    for node in &file.nodes {
        // Children of a skipped ephemeral cannot exist (ephemerals have none).
        match create_options(node, policy) {
            Some(options) => planned.push((rebase(to, &node.path), node, options)),
            None => report.skipped_ephemeral += 1,
        }
    }
    // Check for conflicts before writing anything.
    let exists = futures::future::join_all(planned.iter().map(|(p, _, _)| client.exists(p))).await;
    let mut existing = Vec::new();
    let target_root = normalize(to);
    for ((path, _, _), stat) in planned.iter().zip(exists) {
        match stat.at(path)? {
            // An empty target root is just a place to import into.
            Some(s) if *path == target_root && s.data_length == 0 && s.num_children == 0 => {}
            Some(_) => existing.push(path.clone()),
            None => {}
        }
    }
    if !overwrite {
        if let Some(first) = existing.first() {
            let more = if existing.len() > 1 {
                format!(" (and {} more)", existing.len() - 1)
            } else {
                String::new()
            };
            return Err(CliError::new(format!(
                "NodeExists: {first}{more}; use --overwrite to replace"
            )));
        }
    }
    ensure_parents(client, &normalize(to)).await?;
    // Open ACLs are given at create time. Any other ACL is set once every
    // node exists, deepest first, since it may refuse us creating children.
    let open = Acl::open_unsafe();
    let mut late_acl = Vec::new();
    // One level at a time (parents exist before their children), the
    // creates of a level pipelined.
    let mut by_depth: BTreeMap<usize, Vec<&(String, &ExportNode, CreateOptions)>> = BTreeMap::new();
    for item in &planned {
        by_depth
            .entry(item.1.path.matches('/').count())
            .or_default()
            .push(item);
    }
    for level in by_depth.values() {
        for chunk in level.chunks(PIPELINE) {
            let mut writes = Vec::new();
            for (path, node, options) in chunk.iter().map(|i| (&i.0, i.1, &i.2)) {
                let data = node.bytes()?;
                let acl = node.acls()?;
                let mut options = options.clone();
                if acl == open {
                    options.acl = acl;
                } else {
                    late_acl.push((path.clone(), acl));
                }
                writes.push(async move {
                    let created = match client.create(path, &data, &options).await {
                        // ZooKeeper checks the parent's CREATE permission before
                        // existence: a node under a closed parent may be there already.
                        Err(e) if e.is(ErrorCode::NoAuth) => match client.exists(path).await {
                            Ok(Some(_)) => Err(canopy_client::Error::Server(ErrorCode::NodeExists)),
                            _ => Err(e),
                        },
                        other => other,
                    };
                    match created {
                        Ok(_) => Ok(false),
                        Err(e) if e.is(ErrorCode::NodeExists) => {
                            client.set_data(path, &data, None).await.at(path)?;
                            // The ACL of an existing node is checked below too.
                            Ok(true)
                        }
                        Err(e) => Err(e).at(path),
                    }
                });
            }
            for updated in futures::future::join_all(writes).await {
                if updated? {
                    report.updated += 1;
                } else {
                    report.created += 1;
                }
            }
        }
    }
    if report.updated > 0 {
        // Existing nodes keep whatever ACL they had: compare them all.
        late_acl = planned
            .iter()
            .map(|(path, node, _)| Ok((path.clone(), node.acls()?)))
            .collect::<CliResult<_>>()?;
    }
    // Deepest level first; the nodes of a level pipelined.
    let mut acl_levels: BTreeMap<std::cmp::Reverse<usize>, Vec<(String, Vec<Acl>)>> =
        BTreeMap::new();
    for (path, acl) in late_acl {
        acl_levels
            .entry(std::cmp::Reverse(path.matches('/').count()))
            .or_default()
            .push((path, acl));
    }
    for level in acl_levels.values() {
        for chunk in level.chunks(PIPELINE) {
            let sets = chunk.iter().map(|(path, acl)| async move {
                // A node may already have this ACL, perhaps one without
                // ADMIN that would refuse the set.
                if let Ok((current, _)) = client.get_acl(path).await {
                    if current == *acl {
                        return Ok(());
                    }
                }
                client.set_acl(path, acl, None).await.at(path).map(drop)
            });
            for result in futures::future::join_all(sets).await {
                result?;
            }
        }
    }
    Ok(report)
}

/// Creates the missing ancestors of `path` as empty persistent nodes.
async fn ensure_parents(client: &Client, path: &str) -> CliResult<()> {
    let mut prefix = String::new();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        prefix.push('/');
        prefix.push_str(part);
        match client
            .create(&prefix, b"", &CreateOptions::persistent())
            .await
        {
            Ok(_) => {}
            Err(e) if e.is(ErrorCode::NodeExists) => {}
            Err(e) => return Err(e).at(&prefix),
        }
    }
    Ok(())
}

pub async fn import(ctx: &mut Ctx, a: &ImportArgs) -> CliResult<()> {
    let file = read_export(&a.file)?;
    let to = a.to.clone().unwrap_or_else(|| file.root.clone());
    let client = ctx.client().await?;
    let report = import_tree(&client, &file, &to, a.overwrite, a.ephemerals).await?;
    if a.common.output == Output::Json {
        emit_json(&json!({
            "to": to,
            "created": report.created,
            "updated": report.updated,
            "skipped_ephemeral": report.skipped_ephemeral,
        }));
    } else {
        say!(
            "Imported into {to}: {} created, {} updated, {} ephemeral skipped",
            report.created,
            report.updated,
            report.skipped_ephemeral
        );
    }
    Ok(())
}

/// One difference between two subtrees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    OnlyLeft(String),
    OnlyRight(String),
    Changed {
        path: String,
        what: Vec<&'static str>,
    },
}

pub fn compare(left: &ExportFile, right: &ExportFile, ignore_acl: bool) -> Vec<Difference> {
    let l: BTreeMap<&str, &ExportNode> = left.nodes.iter().map(|n| (n.path.as_str(), n)).collect();
    let r: BTreeMap<&str, &ExportNode> = right.nodes.iter().map(|n| (n.path.as_str(), n)).collect();
    let mut out = Vec::new();
    let mut paths: Vec<&str> = l.keys().chain(r.keys()).copied().collect();
    paths.sort();
    paths.dedup();
    for path in paths {
        match (l.get(path), r.get(path)) {
            (Some(_), None) => out.push(Difference::OnlyLeft(path.to_string())),
            (None, Some(_)) => out.push(Difference::OnlyRight(path.to_string())),
            (Some(a), Some(b)) => {
                let mut what = Vec::new();
                if a.encoding != b.encoding || a.data != b.data {
                    what.push("data");
                }
                if !ignore_acl && a.acl != b.acl {
                    what.push("acl");
                }
                if a.kind != b.kind {
                    what.push("kind");
                }
                if !what.is_empty() {
                    out.push(Difference::Changed {
                        path: path.to_string(),
                        what,
                    });
                }
            }
            (None, None) => {}
        }
    }
    out
}

pub async fn diff(ctx: &mut Ctx, a: &DiffArgs) -> CliResult<Outcome> {
    let left_client = ctx.client().await?;
    let left = export_tree(&left_client, &ctx.server, &a.left).await?;
    let right_server = a.server2.clone().unwrap_or_else(|| ctx.server.clone());
    let right = if a.server2.is_some() {
        let other = connect(&right_server, ctx.connect_timeout).await?;
        let tree = export_tree(&other, &right_server, &a.right).await;
        other.close().await;
        tree?
    } else {
        export_tree(&left_client, &right_server, &a.right).await?
    };
    let diffs = compare(&left, &right, a.ignore_acl);
    let by_path: BTreeMap<&str, &ExportNode> =
        left.nodes.iter().map(|n| (n.path.as_str(), n)).collect();
    let by_path_r: BTreeMap<&str, &ExportNode> =
        right.nodes.iter().map(|n| (n.path.as_str(), n)).collect();
    if a.common.output == Output::Json {
        let list: Vec<_> = diffs
            .iter()
            .map(|d| match d {
                Difference::OnlyLeft(p) => json!({"path": p, "only_in": "left"}),
                Difference::OnlyRight(p) => json!({"path": p, "only_in": "right"}),
                Difference::Changed { path, what } => json!({"path": path, "differs": what}),
            })
            .collect();
        emit_json(&json!({
            "left": format!("{}{}", ctx.server, left.root),
            "right": format!("{right_server}{}", right.root),
            "differences": list,
        }));
    } else {
        say!("--- {} {}", ctx.server, left.root);
        say!("+++ {right_server} {}", right.root);
        for d in &diffs {
            match d {
                Difference::OnlyLeft(p) => say!("- {p}"),
                Difference::OnlyRight(p) => say!("+ {p}"),
                Difference::Changed { path, what } => {
                    say!("~ {path} ({})", what.join(", "));
                    let (l, r) = (by_path[path.as_str()], by_path_r[path.as_str()]);
                    if what.contains(&"data") {
                        say!("    - {}", preview(l));
                        say!("    + {}", preview(r));
                    }
                    if what.contains(&"acl") {
                        say!("    - acl {}", l.acl.join(","));
                        say!("    + acl {}", r.acl.join(","));
                    }
                    if what.contains(&"kind") {
                        say!("    - {}\n    + {}", l.kind, r.kind);
                    }
                }
            }
        }
        if diffs.is_empty() {
            say!("no differences ({} nodes)", left.nodes.len());
        } else {
            say!("{} differences", diffs.len());
        }
    }
    Ok(if diffs.is_empty() {
        Outcome::Done
    } else {
        Outcome::Differs
    })
}

fn preview(node: &ExportNode) -> String {
    match node.bytes() {
        Ok(bytes) => data_preview(&bytes, 70),
        Err(_) => node.data.clone(),
    }
}
