//! The README's walk-through, run as written: the commands come from the
//! README's own code blocks, so the README cannot drift from the code.
//!
//! Each command runs in order in a fresh directory, as a newcomer would run it.
//! `cargo run --release -- …` becomes the built `tessera` binary and `cargo run
//! … --example orders -- …` the built example; the fixed addresses become random
//! loopback ports; `CLIENT_ID`, `CLIENT_SECRET` and `ACCESS_TOKEN` become what
//! the earlier commands printed. The server and the example API are the two
//! commands the README says to leave running.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{BIN, TempDir, example, free_port};

const SECTION: &str = "## From nothing to a verified call";

/// The shell commands of one README section: `sh` code blocks, comment lines
/// dropped, backslash continuations joined.
fn section_commands(readme: &str, heading: &str) -> Vec<String> {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("the README has no section {heading:?}"));
    let rest = &readme[start + heading.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in section.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_block = !in_block && trimmed == "```sh";
            continue;
        }
        if !in_block || trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head.trim_end());
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    assert!(pending.is_empty(), "a command in {heading:?} ends with \\");
    commands
}

struct Background(Vec<Child>);

impl Drop for Background {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn wait_for(http: &reqwest::Client, url: &str, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("{what} exited early with {status}");
        }
        if http.get(url).send().await.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn the_section_parser_joins_continuations_and_skips_comments() {
    let readme = "# T\n## A\n```sh\n# a comment\nfoo --x \\\n    --y\nbar\n```\n```text\nnot run\n```\n## B\n```sh\nbaz\n```\n";
    assert_eq!(section_commands(readme, "## A"), vec!["foo --x --y", "bar"]);
    assert_eq!(section_commands(readme, "## B"), vec!["baz"]);
}

#[tokio::test]
async fn the_readme_walkthrough_ends_in_a_verified_call() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("read README.md");
    let commands = section_commands(&readme, SECTION);
    assert!(commands.len() >= 6, "too few commands: {commands:?}");

    let dir = TempDir::new("readme");
    let server_port = free_port().to_string();
    let api_port = free_port().to_string();
    let orders = example("orders");
    let http = reqwest::Client::new();
    let mut background = Background(Vec::new());
    let mut values: Vec<(&str, String)> = Vec::new();
    let mut last_output = Value::Null;

    for command in &commands {
        let mut line = command
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{server_port}"))
            .replace("127.0.0.1:9000", &format!("127.0.0.1:{api_port}"));
        for (placeholder, value) in &values {
            line = line.replace(placeholder, value);
        }
        for placeholder in ["CLIENT_ID", "CLIENT_SECRET", "ACCESS_TOKEN"] {
            assert!(
                !line.contains(placeholder),
                "{placeholder} is used before a command printed it: {command}"
            );
        }
        let line = if let Some(args) =
            line.strip_prefix("cargo run --release -p tessera-guard --example orders -- ")
        {
            format!("{} {args}", orders.display())
        } else if let Some(args) = line.strip_prefix("cargo run --release -- ") {
            format!("{BIN} {args}")
        } else {
            assert!(
                line.starts_with("curl "),
                "the walk-through runs only tessera, the orders example and curl: {command}"
            );
            line
        };
        let long_running = command.ends_with("-- serve") || command.contains("--example orders");
        // `exec`, so that stopping the child stops the program, not a shell.
        let line = if long_running {
            format!("exec {line}")
        } else {
            line
        };
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(&line)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env_remove("TESSERA_CONFIG")
            .env_remove("TESSERA_DATABASE_URL")
            .env("TESSERA_LISTEN", format!("127.0.0.1:{server_port}"));

        // The two long-running commands of the walk-through.
        if long_running {
            let log =
                std::fs::File::create(dir.path().join(format!("bg-{}.log", background.0.len())))
                    .expect("log file");
            let mut child = shell
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("log")))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("start");
            let url = if command.ends_with("-- serve") {
                format!("http://127.0.0.1:{server_port}/health/live")
            } else {
                format!("http://127.0.0.1:{api_port}/")
            };
            wait_for(&http, &url, command, &mut child).await;
            background.0.push(child);
            continue;
        }

        let output = shell.output().expect("run");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "`{command}` failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        last_output = serde_json::from_str(&stdout).unwrap_or(Value::String(stdout));
        for (key, placeholder) in [
            ("client_id", "CLIENT_ID"),
            ("client_secret", "CLIENT_SECRET"),
            ("access_token", "ACCESS_TOKEN"),
        ] {
            if let Some(value) = last_output.get(key).and_then(Value::as_str) {
                values.retain(|(p, _)| *p != placeholder);
                values.push((placeholder, value.to_owned()));
            }
        }
    }

    // The last command is the call to the API: a 200 with the orders.
    assert_eq!(background.0.len(), 2, "the server and the API were started");
    assert!(
        last_output["orders"].is_array(),
        "the walk-through's last call did not return the orders: {last_output}"
    );
    assert_eq!(last_output["scope"], "orders.read", "{last_output}");
    let client_id = &values
        .iter()
        .find(|(p, _)| *p == "CLIENT_ID")
        .expect("a client was created")
        .1;
    assert_eq!(last_output["client_id"], client_id.as_str());
}
