//! Reading a whole subtree: one level at a time, every read of a level
//! pipelined on the session, so a tree of thousands of nodes takes a few
//! round trips per level rather than one per node.

use std::collections::HashMap;

use canopy_client::{Acl, Client, Error, Stat};
use canopy_protocol::ErrorCode;
use futures::future::join_all;

use crate::error::{AtPath, CliResult};

/// Requests in flight at once while walking.
const IN_FLIGHT: usize = 256;

/// What to read of each node besides its children and Stat.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalkOptions {
    pub data: bool,
    pub acl: bool,
    /// Levels below the root to visit (`None`: all).
    pub depth: Option<usize>,
}

/// One node of a walked subtree.
#[derive(Debug, Clone)]
pub struct Node {
    pub path: String,
    /// Levels below the walk's root (the root is 0).
    pub depth: usize,
    pub stat: Stat,
    /// Sorted child names (all of them, even past the depth limit).
    pub children: Vec<String>,
    pub data: Vec<u8>,
    pub acl: Vec<Acl>,
}

impl Node {
    pub fn name(&self) -> &str {
        if self.path == "/" {
            "/"
        } else {
            self.path.rsplit('/').next().unwrap_or("")
        }
    }
}

/// `parent` + `/` + `child`, minding the root.
pub fn join(parent: &str, child: &str) -> String {
    if parent.ends_with('/') {
        format!("{parent}{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// A path without a trailing slash (except the root itself).
pub fn normalize(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Reads `root` and the nodes under it, depth first in name order. Nodes
/// that vanish during the walk are left out; the root must exist.
pub async fn walk(client: &Client, root: &str, options: WalkOptions) -> CliResult<Vec<Node>> {
    let root = normalize(root);
    let mut found: HashMap<String, Node> = HashMap::new();
    let mut level = vec![root.clone()];
    let mut depth = 0;
    while !level.is_empty() {
        let mut next = Vec::new();
        for chunk in level.chunks(IN_FLIGHT) {
            let reads = chunk
                .iter()
                .map(|path| read_node(client, path, depth, options));
            for (path, result) in chunk.iter().zip(join_all(reads).await) {
                match result {
                    Ok(node) => {
                        if options.depth.is_none_or(|max| depth < max) {
                            next.extend(node.children.iter().map(|c| join(path, c)));
                        }
                        found.insert(path.clone(), node);
                    }
                    // Gone between listing and reading: skip it, but the root must exist.
                    Err(Error::Server(ErrorCode::NoNode)) if *path != root => {}
                    Err(e) => return Err(e).at(path),
                }
            }
        }
        level = next;
        depth += 1;
    }
    // Depth-first order, children by name.
    let mut ordered = Vec::with_capacity(found.len());
    let mut stack = vec![root];
    while let Some(path) = stack.pop() {
        if let Some(node) = found.remove(&path) {
            for child in node.children.iter().rev() {
                stack.push(join(&path, child));
            }
            ordered.push(node);
        }
    }
    Ok(ordered)
}

async fn read_node(
    client: &Client,
    path: &str,
    depth: usize,
    options: WalkOptions,
) -> canopy_client::Result<Node> {
    // The three reads go out together.
    let data_read = async {
        match options.data {
            true => client.get_data(path).await.map(Some),
            false => Ok(None),
        }
    };
    let acl_read = async {
        match options.acl {
            true => client.get_acl(path).await.map(|(acl, _)| acl),
            false => Ok(Vec::new()),
        }
    };
    let (children, data, acl) = futures::join!(client.get_children(path), data_read, acl_read);
    let (mut children, mut stat) = children?;
    children.sort();
    let data = match data? {
        Some((bytes, data_stat)) => {
            stat = data_stat;
            bytes
        }
        None => Vec::new(),
    };
    let acl = acl?;
    Ok(Node {
        path: path.to_string(),
        depth,
        stat,
        children,
        data,
        acl,
    })
}

/// The path of `node` relative to `root` (`/` for the root itself).
pub fn relative(root: &str, path: &str) -> String {
    let root = normalize(root);
    if root == "/" {
        return path.to_string();
    }
    match path.strip_prefix(&root) {
        Some("") => "/".to_string(),
        Some(rest) => rest.to_string(),
        None => path.to_string(),
    }
}

/// `relative` put back under another root.
pub fn rebase(root: &str, relative: &str) -> String {
    let root = normalize(root);
    match (root.as_str(), relative) {
        (_, "/") => root,
        ("/", rel) => rel.to_string(),
        (root, rel) => format!("{root}{rel}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_and_rebase() {
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(normalize("/a/"), "/a");
        assert_eq!(relative("/a", "/a/b/c"), "/b/c");
        assert_eq!(relative("/a", "/a"), "/");
        assert_eq!(relative("/", "/x"), "/x");
        assert_eq!(rebase("/copy", "/b/c"), "/copy/b/c");
        assert_eq!(rebase("/copy", "/"), "/copy");
        assert_eq!(rebase("/", "/b"), "/b");
    }
}
