//! `canopy shell` (piped, and typed into tmux for tab completion) and the
//! full-screen `canopy browse`, driven in tmux with send-keys and read back
//! with capture-pane, against a real server.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A tmux server of its own (`-L`), so nothing touches the user's sessions.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `command` in a detached 120x32 session.
    fn start(command: &str) -> Tmux {
        assert!(
            Command::new("tmux").arg("-V").output().is_ok(),
            "tmux is needed for the interactive tests (apt-get install tmux)"
        );
        let tmux = Tmux {
            socket: unique("canopy-cli-tmux")
                .trim_start_matches('/')
                .to_string(),
        };
        let status = tmux
            .cmd()
            .args([
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "120",
                "-y",
                "32",
                command,
            ])
            .status()
            .expect("tmux new-session");
        assert!(status.success());
        tmux
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket]);
        cmd
    }

    /// Named keys (`Down`, `Enter`, `Tab`, `BSpace`) or single characters.
    fn keys(&self, keys: &[&str]) {
        for key in keys {
            let status = self
                .cmd()
                .args(["send-keys", "-t", "t", key])
                .status()
                .unwrap();
            assert!(status.success());
            // One key at a time: the app reads each before the next arrives.
            std::thread::sleep(Duration::from_millis(40));
        }
    }

    /// Literal text.
    fn text(&self, text: &str) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", "t", "-l", text])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Waits until the screen satisfies `check`.
    fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("the screen never showed {what}:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_text(&self, text: &str) -> String {
        self.wait_for(text, |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

fn temp_home() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary HOME")
}

#[test]
fn shell_runs_commands_in_one_session() {
    let root = unique("shell");
    cli(&["create", &root]).ok();
    let home = temp_home();
    let script = format!(
        "create -e {root}/eph here\n\
         getEphemerals {root}\n\
         get {root}/eph\n\
         get {root}/missing\n\
         nonsense\n\
         set {root}/eph \"two words\"\n\
         get {root}/eph\n\
         quit\n"
    );
    let mut cmd = Command::new(canopy_bin());
    cmd.args(["shell", "--server", &server().connect_string()])
        .env("HOME", home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        format!("Created {root}/eph\n[{root}/eph]\nhere\ntwo words\n")
    );
    assert!(
        stderr.starts_with(&format!("NoNode: {root}/missing\n")),
        "{stderr}"
    );
    assert!(
        stderr.contains("unrecognized subcommand 'nonsense'"),
        "{stderr}"
    );
    // The shell's session ended with it, and its ephemeral node with that.
    cli(&["get", &format!("{root}/eph")]).fails_with(&format!("NoNode: {root}/eph"));
    let history = std::fs::read_to_string(home.path().join(".canopy_history")).unwrap();
    assert!(
        history.contains(&format!("getEphemerals {root}")),
        "{history}"
    );
    cli(&["deleteall", &root]).ok();
}

#[test]
fn shell_completes_paths_with_tab() {
    let root = unique("complete");
    cli(&["create", &root]).ok();
    cli(&["create", &format!("{root}/alphabet"), "letters"]).ok();
    cli(&["create", &format!("{root}/beta")]).ok();
    let home = temp_home();
    let tmux = Tmux::start(&format!(
        "env HOME={} {} shell --server {}",
        home.path().display(),
        canopy_bin().display(),
        server().connect_string()
    ));
    tmux.wait_text("(CONNECTED) 0]");
    tmux.text(&format!("get {root}/al"));
    tmux.keys(&["Tab"]);
    tmux.wait_text(&format!("get {root}/alphabet"));
    tmux.keys(&["Enter"]);
    tmux.wait_text("letters");
    // Command names complete too.
    tmux.text("getAllCh");
    tmux.keys(&["Tab"]);
    tmux.wait_text("getAllChildrenNumber");
    // The completion added the space before the argument.
    tmux.text(&root);
    tmux.wait_text(&format!("getAllChildrenNumber {root}"));
    tmux.keys(&["Enter"]);
    tmux.wait_for("the count 2", |s| s.lines().any(|l| l.trim() == "2"));
    tmux.text("quit");
    tmux.keys(&["Enter"]);
    cli(&["deleteall", &root]).ok();
}

#[test]
fn browse_navigates_searches_edits_creates_and_deletes() {
    let root = unique("browse");
    cli(&["create", &root]).ok();
    cli(&["create", &format!("{root}/apps"), r#"{"owner":"ops"}"#]).ok();
    cli(&["create", &format!("{root}/apps/deep")]).ok();
    cli(&["create", &format!("{root}/apps/deep/needle"), "found me"]).ok();
    cli(&["create", &format!("{root}/config"), "v1"]).ok();
    let tmux = Tmux::start(&format!(
        "{} browse {root} --server {}; echo BROWSER-EXITED $?; sleep 30",
        canopy_bin().display(),
        server().connect_string()
    ));
    let screen = tmux.wait_text("Tree");
    assert!(screen.contains("▸ apps [1]"), "{screen}");
    assert!(screen.contains("config"), "{screen}");
    assert!(screen.contains("numChildren = 2"), "{screen}");

    // Down to apps: its JSON data, pretty-printed, on the right.
    tmux.keys(&["Down"]);
    tmux.wait_text("\"owner\": \"ops\"");
    tmux.keys(&["Enter"]);
    tmux.wait_text("▸ deep [1]");

    // Live: a node created elsewhere appears without a key press.
    cli(&["create", &format!("{root}/apps/arrived")]).ok();
    tmux.wait_text("arrived");

    // Search opens the ancestors of the match and selects it.
    tmux.keys(&["/"]);
    tmux.text("needle");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_text("found me");
    assert!(
        screen.contains(&format!("found {root}/apps/deep/needle")),
        "{screen}"
    );
    assert!(screen.contains("> "), "{screen}");

    // Edit the data of the selected node: clear it, type, save.
    tmux.keys(&["e"]);
    tmux.wait_text("data (Enter saves, Esc cancels): found me");
    for _ in 0.."found me".len() {
        tmux.keys(&["BSpace"]);
    }
    tmux.text("edited");
    tmux.keys(&["Enter"]);
    tmux.wait_text(&format!("saved {root}/apps/deep/needle"));
    assert_eq!(
        cli(&["get", &format!("{root}/apps/deep/needle")]).ok(),
        "edited\n"
    );

    // Create a child of the selected node.
    tmux.keys(&["c"]);
    tmux.text("kid");
    tmux.keys(&["Enter"]);
    tmux.wait_text(&format!("created {root}/apps/deep/needle/kid"));
    assert_eq!(
        cli(&["ls", &format!("{root}/apps/deep/needle")]).ok(),
        "[kid]\n"
    );

    // Delete asks first; `n` keeps the node, `y` deletes it and its children.
    tmux.keys(&["Left", "Left"]);
    tmux.wait_text(&format!("┌ {root}/apps/deep/needle "));
    tmux.keys(&["d"]);
    tmux.wait_text(&format!(
        "delete {root}/apps/deep/needle and 1 nodes under it? (y/n)"
    ));
    tmux.keys(&["n"]);
    tmux.wait_text("not deleted");
    tmux.keys(&["d"]);
    tmux.wait_text("(y/n)");
    tmux.keys(&["y"]);
    tmux.wait_text(&format!("deleted {root}/apps/deep/needle (2 nodes)"));
    cli(&["stat", &format!("{root}/apps/deep/needle")])
        .fails_with(&format!("NoNode: {root}/apps/deep/needle"));

    tmux.keys(&["q"]);
    tmux.wait_text("BROWSER-EXITED 0");
    cli(&["deleteall", &root]).ok();
}
