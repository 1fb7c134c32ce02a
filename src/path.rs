//! Znode paths: validation exactly as ZooKeeper's `PathUtils.validatePath`, and
//! the parent/name split every tree operation needs.

/// Why a path is not a valid znode path (the client gets BadArguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPath {
    pub path: String,
    pub reason: &'static str,
}

impl std::fmt::Display for InvalidPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid path {:?}: {}", self.path, self.reason)
    }
}

fn invalid(path: &str, reason: &'static str) -> InvalidPath {
    InvalidPath {
        path: path.to_string(),
        reason,
    }
}

/// Characters ZooKeeper refuses in paths: controls, and the ranges Java's UTF-16
/// reserves (surrogates, private use, specials).
fn forbidden_char(c: char) -> bool {
    matches!(c,
        '\u{1}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        // (Surrogates cannot occur in a Rust string.)
        | '\u{e000}'..='\u{f8ff}'
        | '\u{fff0}'..='\u{ffff}')
        // Characters beyond the BMP are surrogate pairs in Java: refused too.
        || (c as u32) > 0xffff
}

/// Checks a path. A sequential create validates the path with a suffix
/// appended, so `/queue/` (ending in a slash) is fine there: pass `sequential`.
pub fn validate(path: &str, sequential: bool) -> Result<(), InvalidPath> {
    if sequential {
        return validate(&format!("{path}1"), false);
    }
    if path.is_empty() {
        return Err(invalid(path, "path length must be > 0"));
    }
    if !path.starts_with('/') {
        return Err(invalid(path, "path must start with / character"));
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(invalid(path, "path must not end with / character"));
    }
    for segment in path[1..].split('/') {
        if segment.is_empty() {
            return Err(invalid(path, "empty node name specified"));
        }
        if segment == "." || segment == ".." {
            return Err(invalid(path, "relative paths not allowed"));
        }
    }
    if path.contains('\0') {
        return Err(invalid(path, "null character not allowed"));
    }
    if path.chars().any(forbidden_char) {
        return Err(invalid(path, "invalid character"));
    }
    Ok(())
}

/// The parent of a valid path other than `/`: `/a/b` → `/a`, `/a` → `/`.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last segment of a valid path other than `/`: `/a/b` → `b`.
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// A child's full path: (`/`, `a`) → `/a`, (`/a`, `b`) → `/a/b`.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// Whether `path` is `ancestor` or lies below it.
pub fn is_within(path: &str, ancestor: &str) -> bool {
    ancestor == "/"
        || path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

/// `path`'s proper ancestors, nearest first, ending with `/`.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut current = if path == "/" { None } else { Some(path) };
    std::iter::from_fn(move || {
        let p = current?;
        let up = parent(p);
        current = if up == "/" { None } else { Some(up) };
        if p == "/" {
            None
        } else {
            Some(up)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_zookeeper() {
        for good in ["/", "/a", "/a/b", "/a.b", "/..a", "/dubbo/x%3A%2F%2F"] {
            assert!(validate(good, false).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a",
            "/a/",
            "//a",
            "/a//b",
            "/.",
            "/a/..",
            "/a/./b",
            "/a\0b",
            "/a\u{1}",
            "/\u{fff5}",
        ] {
            assert!(validate(bad, false).is_err(), "{bad:?}");
        }
        assert!(validate("/queue/", true).is_ok());
        assert!(validate("/queue/item-", true).is_ok());
        assert!(validate("/queue//", true).is_err());
    }

    #[test]
    fn splits_parent_and_name() {
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(name("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }

    #[test]
    fn lists_ancestors_nearest_first() {
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), ["/a/b", "/a", "/"]);
        assert_eq!(ancestors("/a").collect::<Vec<_>>(), ["/"]);
        assert_eq!(ancestors("/").count(), 0);
    }

    #[test]
    fn within_respects_segment_boundaries() {
        assert!(is_within("/a/b", "/a"));
        assert!(is_within("/a", "/a"));
        assert!(!is_within("/ab", "/a"));
        assert!(is_within("/ab", "/"));
    }
}
