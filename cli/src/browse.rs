//! `canopy browse`: a full-screen browser. The tree on the left, the
//! selected node's data and Stat on the right; a recursive watch on the
//! starting node keeps it live. Keys: arrows or hjkl to move, Enter/→ to
//! open, ← to close, `/` to search, `n` next match, `e` edit data, `c`
//! create a child, `d` delete (asks first), `r` refresh, `q` quit.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::time::Duration;

use canopy_client::{AddWatchMode, Client, CreateOptions, Stat};
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures::future::join_all;
use ratatui::layout::{Constraint, Direction, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;
use tokio::runtime::Runtime;

use crate::context::Ctx;
use crate::error::{CliError, CliResult};
use crate::render::{data_text, stat_text};
use crate::walk::{join, normalize, walk, WalkOptions};

/// What the bottom line is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Normal,
    Search(String),
    Edit(String),
    Create(String),
    ConfirmDelete { path: String, descendants: i32 },
}

/// One visible line of the tree.
#[derive(Debug, Clone)]
struct Row {
    path: String,
    depth: usize,
}

struct Browser<'r> {
    runtime: &'r Runtime,
    client: Client,
    root: String,
    expanded: HashSet<String>,
    children: HashMap<String, Vec<String>>,
    stats: HashMap<String, Stat>,
    rows: Vec<Row>,
    selected: usize,
    /// The selected node's data, or why it could not be read.
    detail: Result<(Vec<u8>, Stat), String>,
    mode: Mode,
    status: String,
    last_search: String,
}

impl<'r> Browser<'r> {
    fn selected_path(&self) -> String {
        self.rows
            .get(self.selected)
            .map_or_else(|| self.root.clone(), |r| r.path.clone())
    }

    /// Reloads every open node's children, every visible node's Stat and the
    /// selected node's data, all pipelined.
    fn refresh(&mut self) {
        let client = self.client.clone();
        let open: Vec<String> = self.expanded.iter().cloned().collect();
        let lists = self
            .runtime
            .block_on(join_all(open.iter().map(|p| client.get_children(p))));
        for (path, result) in open.iter().zip(lists) {
            match result {
                Ok((mut names, stat)) => {
                    names.sort();
                    self.children.insert(path.clone(), names);
                    self.stats.insert(path.clone(), stat);
                }
                Err(_) => {
                    self.children.remove(path);
                    self.expanded.remove(path);
                }
            }
        }
        self.rebuild_rows();
        let paths: Vec<String> = self.rows.iter().map(|r| r.path.clone()).collect();
        let stats = self
            .runtime
            .block_on(join_all(paths.iter().map(|p| client.exists(p))));
        for (path, stat) in paths.iter().zip(stats) {
            if let Ok(Some(stat)) = stat {
                self.stats.insert(path.clone(), stat);
            }
        }
        self.load_detail();
    }

    fn rebuild_rows(&mut self) {
        let keep = self.selected_path();
        let mut rows = Vec::new();
        let mut stack = vec![(self.root.clone(), 0)];
        while let Some((path, depth)) = stack.pop() {
            if self.expanded.contains(&path) {
                if let Some(names) = self.children.get(&path) {
                    for name in names.iter().rev() {
                        stack.push((join(&path, name), depth + 1));
                    }
                }
            }
            rows.push(Row { path, depth });
        }
        self.rows = rows;
        self.select_path(&keep);
    }

    fn select_path(&mut self, path: &str) {
        if let Some(at) = self.rows.iter().position(|r| r.path == path) {
            self.selected = at;
        } else {
            self.selected = self.selected.min(self.rows.len().saturating_sub(1));
        }
    }

    fn load_detail(&mut self) {
        let path = self.selected_path();
        self.detail = self
            .runtime
            .block_on(self.client.get_data(&path))
            .map_err(|e| CliError::zk(e, &path).message);
    }

    fn expand(&mut self, path: &str) {
        self.expanded.insert(path.to_string());
        self.refresh();
    }

    fn collapse_or_parent(&mut self) {
        let path = self.selected_path();
        if self.expanded.remove(&path) {
            self.rebuild_rows();
            return;
        }
        if path != self.root {
            let parent = match path.rfind('/') {
                Some(0) => "/".to_string(),
                Some(at) => path[..at].to_string(),
                None => return,
            };
            self.select_path(&parent);
            self.load_detail();
        }
    }

    fn move_by(&mut self, delta: isize) {
        let last = self.rows.len().saturating_sub(1) as isize;
        self.selected = (self.selected as isize + delta).clamp(0, last) as usize;
        self.load_detail();
    }

    /// Finds the next node (after the selected one, in tree order) whose
    /// path contains `needle`, opening its ancestors.
    fn search(&mut self, needle: &str) {
        let nodes =
            match self
                .runtime
                .block_on(walk(&self.client, &self.root, WalkOptions::default()))
            {
                Ok(nodes) => nodes,
                Err(e) => {
                    self.status = e.message;
                    return;
                }
            };
        let current = self.selected_path();
        let start = nodes
            .iter()
            .position(|n| n.path == current)
            .map_or(0, |i| i + 1);
        let found = nodes[start..]
            .iter()
            .chain(nodes[..start].iter())
            .find(|n| n.path.contains(needle))
            .map(|n| n.path.clone());
        match found {
            Some(path) => {
                // Open every ancestor between the root and the match.
                let mut at = path.clone();
                while let Some(cut) = at.rfind('/') {
                    at = if cut == 0 {
                        "/".to_string()
                    } else {
                        at[..cut].to_string()
                    };
                    if at.len() < self.root.len() {
                        break;
                    }
                    self.expanded.insert(at.clone());
                    if at == "/" {
                        break;
                    }
                }
                self.refresh();
                self.select_path(&path);
                self.load_detail();
                self.status = format!("found {path}");
            }
            None => self.status = format!("no node matches {needle:?}"),
        }
    }

    fn save_edit(&mut self, text: &str) {
        let path = self.selected_path();
        let version = self.detail.as_ref().ok().map(|(_, s)| s.version);
        match self
            .runtime
            .block_on(self.client.set_data(&path, text.as_bytes(), version))
        {
            Ok(_) => self.status = format!("saved {path}"),
            Err(e) => self.status = CliError::zk(e, &path).message,
        }
        self.refresh();
    }

    fn create_child(&mut self, name: &str) {
        let parent = self.selected_path();
        let path = join(&parent, name.trim());
        match self
            .runtime
            .block_on(self.client.create(&path, b"", &CreateOptions::persistent()))
        {
            Ok((created, _)) => {
                self.status = format!("created {created}");
                self.expanded.insert(parent);
                self.refresh();
                self.select_path(&created);
                self.load_detail();
            }
            Err(e) => self.status = CliError::zk(e, &path).message,
        }
    }

    fn delete(&mut self, path: &str) {
        match self
            .runtime
            .block_on(crate::zkcli::delete_all(&self.client, path, 1000))
        {
            Ok(n) => self.status = format!("deleted {path} ({n} nodes)"),
            Err(e) => self.status = e.message,
        }
        self.refresh();
    }

    /// Handles one key; returns false to quit.
    fn on_key(&mut self, key: KeyEvent) -> bool {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return false;
        }
        match self.mode.clone() {
            Mode::Normal => return self.on_normal_key(key.code),
            Mode::Search(mut text) | Mode::Edit(mut text) | Mode::Create(mut text) => {
                match key.code {
                    KeyCode::Esc => self.mode = Mode::Normal,
                    KeyCode::Enter => {
                        let mode = std::mem::replace(&mut self.mode, Mode::Normal);
                        match mode {
                            Mode::Search(_) => {
                                self.last_search = text.clone();
                                self.search(&text);
                            }
                            Mode::Edit(_) => self.save_edit(&text),
                            Mode::Create(_) if !text.trim().is_empty() => self.create_child(&text),
                            _ => {}
                        }
                    }
                    KeyCode::Backspace => {
                        text.pop();
                        self.set_input(text);
                    }
                    KeyCode::Char(c) => {
                        text.push(c);
                        self.set_input(text);
                    }
                    _ => {}
                }
            }
            Mode::ConfirmDelete { path, .. } => {
                self.mode = Mode::Normal;
                if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                    self.delete(&path);
                } else {
                    self.status = "not deleted".into();
                }
            }
        }
        true
    }

    fn set_input(&mut self, text: String) {
        self.mode = match self.mode {
            Mode::Search(_) => Mode::Search(text),
            Mode::Edit(_) => Mode::Edit(text),
            Mode::Create(_) => Mode::Create(text),
            ref other => other.clone(),
        };
    }

    fn on_normal_key(&mut self, code: KeyCode) -> bool {
        match code {
            KeyCode::Char('q') => return false,
            KeyCode::Esc => self.status.clear(),
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::PageDown => self.move_by(20),
            KeyCode::PageUp => self.move_by(-20),
            KeyCode::Home | KeyCode::Char('g') => self.move_by(-(self.rows.len() as isize)),
            KeyCode::End | KeyCode::Char('G') => self.move_by(self.rows.len() as isize),
            KeyCode::Right | KeyCode::Enter | KeyCode::Char('l') => {
                let path = self.selected_path();
                self.expand(&path);
            }
            KeyCode::Left | KeyCode::Char('h') => self.collapse_or_parent(),
            KeyCode::Char('r') => {
                self.refresh();
                self.status = "refreshed".into();
            }
            KeyCode::Char('/') => self.mode = Mode::Search(String::new()),
            KeyCode::Char('n') if !self.last_search.is_empty() => {
                let needle = self.last_search.clone();
                self.search(&needle);
            }
            KeyCode::Char('e') => match &self.detail {
                Ok((data, _)) => match std::str::from_utf8(data) {
                    Ok(text) => self.mode = Mode::Edit(text.to_string()),
                    Err(_) => self.status = "binary data cannot be edited here".into(),
                },
                Err(e) => self.status = e.clone(),
            },
            KeyCode::Char('c') => self.mode = Mode::Create(String::new()),
            KeyCode::Char('d') => {
                let path = self.selected_path();
                if path == "/" || path == self.root {
                    self.status = "the starting node cannot be deleted here".into();
                } else {
                    let descendants = self
                        .runtime
                        .block_on(self.client.get_all_children_number(&path))
                        .unwrap_or(0);
                    self.mode = Mode::ConfirmDelete { path, descendants };
                }
            }
            _ => {}
        }
        true
    }

    fn draw(&self, frame: &mut Frame) {
        let outer = Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Min(3), Constraint::Length(1)])
            .split(frame.area());
        let panes = Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Percentage(40), Constraint::Percentage(60)])
            .split(outer[0]);

        let items: Vec<ListItem> = self
            .rows
            .iter()
            .map(|row| {
                let stat = self.stats.get(&row.path);
                let has_children = stat.is_some_and(|s| s.num_children > 0);
                let marker = match (has_children, self.expanded.contains(&row.path)) {
                    (true, true) => "▾ ",
                    (true, false) => "▸ ",
                    _ => "  ",
                };
                let name = if row.depth == 0 {
                    row.path.clone()
                } else {
                    row.path.rsplit('/').next().unwrap_or("").to_string()
                };
                let mut spans = vec![Span::raw(format!(
                    "{}{marker}{name}",
                    "  ".repeat(row.depth)
                ))];
                if let Some(stat) = stat {
                    if stat.kind().is_ephemeral() {
                        spans.push(Span::styled(
                            " (e)",
                            Style::default().add_modifier(Modifier::DIM),
                        ));
                    }
                    if stat.num_children > 0 {
                        spans.push(Span::styled(
                            format!(" [{}]", stat.num_children),
                            Style::default().add_modifier(Modifier::DIM),
                        ));
                    }
                }
                ListItem::new(Line::from(spans))
            })
            .collect();
        let list = List::new(items)
            .block(Block::default().borders(Borders::ALL).title(" Tree "))
            .highlight_style(Style::default().add_modifier(Modifier::REVERSED))
            .highlight_symbol("> ");
        let mut state = ListState::default();
        state.select(Some(self.selected));
        frame.render_stateful_widget(list, panes[0], &mut state);

        let right = Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Min(3), Constraint::Length(13)])
            .split(panes[1]);
        let path = self.selected_path();
        let (data, stat) = match &self.detail {
            Ok((data, stat)) => (data_text(data), stat_text(stat)),
            Err(e) => (e.clone(), String::new()),
        };
        frame.render_widget(
            Paragraph::new(data).wrap(Wrap { trim: false }).block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!(" {path} ")),
            ),
            right[0],
        );
        frame.render_widget(
            Paragraph::new(stat).block(Block::default().borders(Borders::ALL).title(" Stat ")),
            right[1],
        );

        let bottom = match &self.mode {
            Mode::Normal if !self.status.is_empty() => self.status.clone(),
            Mode::Normal => {
                "↑↓ move  →/Enter open  ← close  / search  n next  e edit  c create  d delete  r refresh  q quit"
                    .to_string()
            }
            Mode::Search(text) => format!("search: {text}"),
            Mode::Edit(text) => format!("data (Enter saves, Esc cancels): {text}"),
            Mode::Create(text) => format!("new child of {path}: {text}"),
            Mode::ConfirmDelete { path, descendants } => {
                format!("delete {path} and {descendants} nodes under it? (y/n)")
            }
        };
        frame.render_widget(Paragraph::new(bottom), outer[1]);
    }
}

/// Runs the browser until `q`.
pub fn run(runtime: &Runtime, mut ctx: Ctx, start: &str) -> CliResult<()> {
    let root = normalize(start);
    let client = runtime.block_on(ctx.client())?;
    if runtime
        .block_on(client.exists(&root))
        .map_err(|e| CliError::zk(e, &root))?
        .is_none()
    {
        return Err(CliError::new(format!("NoNode: {root}")));
    }
    // Any change under the starting node makes the view reload.
    let (changed_tx, changed) = mpsc::channel();
    match runtime.block_on(client.add_watch(&root, AddWatchMode::PersistentRecursive)) {
        Ok(mut watcher) => {
            runtime.spawn(async move {
                while let Some(event) = watcher.next_event().await {
                    if changed_tx.send(event.path).is_err() {
                        break;
                    }
                }
            });
        }
        Err(e) => eprintln!("no live refresh: {}", CliError::zk(e, &root)),
    }
    let mut browser = Browser {
        runtime,
        client,
        root: root.clone(),
        expanded: HashSet::from([root.clone()]),
        children: HashMap::new(),
        stats: HashMap::new(),
        rows: Vec::new(),
        selected: 0,
        detail: Err(String::new()),
        mode: Mode::Normal,
        status: String::new(),
        last_search: String::new(),
    };
    browser.refresh();

    let mut terminal = ratatui::init();
    let result = (|| -> std::io::Result<()> {
        loop {
            terminal.draw(|frame| browser.draw(frame))?;
            if event::poll(Duration::from_millis(150))? {
                if let Event::Key(key) = event::read()? {
                    if key.kind == KeyEventKind::Press && !browser.on_key(key) {
                        return Ok(());
                    }
                }
            }
            // Collapse a burst of events into one reload.
            let mut dirty = false;
            while changed.try_recv().is_ok() {
                dirty = true;
            }
            if dirty {
                browser.refresh();
            }
        }
    })();
    ratatui::restore();
    runtime.block_on(ctx.close());
    result.map_err(|e| CliError::new(format!("terminal error: {e}")))
}
