//! `canopy shell`: a prompt in the manner of zkCli.sh, with history
//! (`~/.canopy_history`) and tab completion of commands and paths. Every
//! command of the command line works here, in one session, so ephemeral
//! nodes, watches and `addauth` last until the shell ends.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canopy_client::Client;
use clap::Parser;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use tokio::runtime::Runtime;

use crate::args::CliCommand;
use crate::context::Ctx;
use crate::error::{CliError, CliResult};
use crate::say;

/// One line of the shell, parsed with the command line's own definitions.
#[derive(Parser, Debug)]
#[command(name = "", no_binary_name = true, disable_help_flag = false)]
struct ShellLine {
    #[command(subcommand)]
    command: CliCommand,
}

/// Commands only the shell has.
const BUILTINS: &[&str] = &["connect", "close", "history", "help", "quit", "exit"];

/// Completes command names and node paths (asking the server for children).
struct PathCompleter {
    client: Arc<Mutex<Option<Client>>>,
    runtime: tokio::runtime::Handle,
}

impl PathCompleter {
    fn command_names() -> Vec<String> {
        use clap::CommandFactory;
        let mut names: Vec<String> = ShellLine::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .filter(|n| n != "shell" && n != "browse")
            .collect();
        names.extend(BUILTINS.iter().map(|b| b.to_string()));
        names.sort();
        names
    }

    fn children(&self, parent: &str) -> Vec<String> {
        let Some(client) = self.client.lock().ok().and_then(|c| c.clone()) else {
            return Vec::new();
        };
        let lookup = async {
            tokio::time::timeout(Duration::from_secs(2), client.get_children(parent)).await
        };
        match self.runtime.block_on(lookup) {
            Ok(Ok((mut children, _))) => {
                children.sort();
                children
            }
            _ => Vec::new(),
        }
    }
}

/// Where a path being typed splits into the parent to list and the prefix
/// of the child name.
pub fn split_partial_path(word: &str) -> (String, &str) {
    match word.rfind('/') {
        Some(0) => ("/".to_string(), &word[1..]),
        Some(at) => (word[..at].to_string(), &word[at + 1..]),
        None => ("/".to_string(), word),
    }
}

impl Completer for PathCompleter {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        let pair = |s: String| Pair {
            display: s.clone(),
            replacement: s,
        };
        if start == 0 {
            let names = Self::command_names()
                .into_iter()
                .filter(|n| n.starts_with(word))
                .map(|n| pair(format!("{n} ")))
                .collect();
            return Ok((0, names));
        }
        if !word.starts_with('/') {
            return Ok((pos, Vec::new()));
        }
        let (parent, prefix) = split_partial_path(word);
        let candidates = self
            .children(&parent)
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .map(|c| pair(crate::walk::join(&parent, &c)))
            .collect();
        Ok((start, candidates))
    }
}

impl Hinter for PathCompleter {
    type Hint = String;
}
impl Highlighter for PathCompleter {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _: bool) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}
impl Validator for PathCompleter {}
impl Helper for PathCompleter {}

/// Splits a line into words: whitespace separates, quotes group
/// (`set /a "two words"`), a backslash escapes the next character.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') | (None, '\\') => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
                in_word = true;
            }
            (Some(_), c) => current.push(c),
            (None, '"') | (None, '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

fn history_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|home| std::path::PathBuf::from(home).join(".canopy_history"))
}

const HELP: &str = "\
Commands (as on the command line; --server is the shell's own):
  ls [-s] [-R] [-w] path      get [-s] [-w] path       stat [-w] path
  set [-s] [-v version] path data                      delete [-v version] path
  create [-e] [-s] [-c] [-t ttl] path [data] [acl]     deleteall path
  getAcl [-s] path   setAcl [-s] [-v version] [-R] path acl   addauth scheme auth
  sync path   getEphemerals [path]   getAllChildrenNumber path   whoami   config
  addWatch [-m persistent|persistentRecursive] path    removewatches path [-c|-d|-a]
  tree [path] [--depth N]   find path [--name GLOB] [--data REGEX] [--ephemeral]
  grep REGEX [path]   du [path]   watch path [--recursive]   export path
  import file [--to path] [--overwrite]   diff path1 path2 [--server2 host:port]
  services [--app NAME] [--interface GLOB] [show INTERFACE]   sessions   four WORD
Shell: connect host:port[/chroot]   close   history   help   quit
Add --output json to read commands; <command> --help for its flags.";

/// Runs the prompt until `quit` or end of input.
pub fn run(runtime: &Runtime, mut ctx: Ctx) -> CliResult<()> {
    ctx.interactive = true;
    let shared_client = Arc::new(Mutex::new(None));
    let mut editor: Editor<PathCompleter, DefaultHistory> =
        Editor::new().map_err(|e| CliError::new(format!("cannot start the prompt: {e}")))?;
    editor.set_helper(Some(PathCompleter {
        client: shared_client.clone(),
        runtime: runtime.handle().clone(),
    }));
    let history = history_file();
    if let Some(file) = &history {
        let _ = editor.load_history(file);
    }
    // Connect up front, as zkCli does; a failure is reported, not fatal.
    match runtime.block_on(ctx.client()) {
        Ok(client) => *shared_client.lock().unwrap() = Some(client),
        Err(e) => eprintln!("{e}"),
    }
    let mut count = 0;
    loop {
        let state = match ctx.connected() {
            Some(c) if c.state().is_connected() => "CONNECTED",
            Some(_) => "DISCONNECTED",
            None => "CLOSED",
        };
        let prompt = format!("[canopy: {}({state}) {count}] ", ctx.server);
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("error: {e}");
                break;
            }
        };
        let words = match split_words(&line) {
            Ok(words) if words.is_empty() => continue,
            Ok(words) => words,
            Err(e) => {
                eprintln!("{e}");
                continue;
            }
        };
        let _ = editor.add_history_entry(line.as_str());
        count += 1;
        match words[0].as_str() {
            "quit" | "exit" => break,
            "help" => {
                say!("{HELP}");
                continue;
            }
            "history" => {
                for (i, entry) in editor.history().iter().enumerate() {
                    say!("{i}: {entry}");
                }
                continue;
            }
            "close" => {
                runtime.block_on(ctx.close());
                *shared_client.lock().unwrap() = None;
                continue;
            }
            "connect" => {
                let server = words.get(1).cloned().unwrap_or_else(|| ctx.server.clone());
                match runtime.block_on(ctx.reconnect(&server)) {
                    Ok(client) => *shared_client.lock().unwrap() = Some(client),
                    Err(e) => eprintln!("{e}"),
                }
                continue;
            }
            _ => {}
        }
        let command = match ShellLine::try_parse_from(&words) {
            Ok(parsed) => parsed.command,
            Err(e) => {
                // clap's own message: usage errors and --help alike.
                let _ = e.print();
                continue;
            }
        };
        if matches!(command, CliCommand::Shell(_) | CliCommand::Browse(_)) {
            eprintln!("shell and browse cannot run inside the shell");
            continue;
        }
        if let Err(e) = runtime.block_on(crate::execute(&command, &mut ctx)) {
            eprintln!("{e}");
        }
        *shared_client.lock().unwrap() = ctx.connected();
    }
    if let Some(file) = &history {
        let _ = editor.save_history(file);
    }
    runtime.block_on(ctx.close());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words(r#"set /a "two words" 'x y' a\ b"#).unwrap(),
            ["set", "/a", "two words", "x y", "a b"]
        );
        assert!(split_words("get \"open").is_err());
        assert_eq!(split_partial_path("/dub"), ("/".to_string(), "dub"));
        assert_eq!(
            split_partial_path("/dubbo/com"),
            ("/dubbo".to_string(), "com")
        );
    }

    #[test]
    fn every_command_parses_in_the_shell() {
        let line = ShellLine::try_parse_from(["create", "-e", "/x", "data"]).unwrap();
        assert!(matches!(line.command, CliCommand::Create(ref a) if a.ephemeral && a.path == "/x"));
        assert!(PathCompleter::command_names().contains(&"getAcl".to_string()));
    }
}
