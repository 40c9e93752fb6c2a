//! What the host's process tests share: scratch directories and a `callroute serve` process,
//! each cleaned up on drop.

#![allow(dead_code, reason = "each test binary uses its own part of it")]

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("callroute-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `callroute serve` process, killed on drop if it is still running.
pub struct ServeProcess {
    /// The process.
    pub child: std::process::Child,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// What it wrote to stderr so far, read as it comes: a pipe nobody reads would fill up
    /// and stop the server at its next log line.
    logs: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServeProcess {
    pub fn start(schemes: &str) -> ServeProcess {
        ServeProcess::start_with(schemes, &[], None)
    }

    /// With more options, and at most `open_files` file descriptors (`ulimit -n`).
    pub fn start_with(schemes: &str, extra: &[&str], open_files: Option<u32>) -> ServeProcess {
        use std::io::BufRead;
        let limit = open_files.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(match open_files {
                Some(_) => r#"ulimit -n "$0" && exec "$@""#,
                None => r#"exec "$@""#,
            })
            .arg(limit)
            .arg(env!("CARGO_BIN_EXE_callroute"))
            .args([
                "serve",
                "--schemes",
                schemes,
                "--listen",
                "127.0.0.1:0",
                "--allow-private-network",
            ])
            .args(extra);
        // The default outbox (`callroute-outbox`) in the test's own directory.
        let dir = std::path::Path::new(schemes).parent().unwrap();
        let mut child = command
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .parse()
            .unwrap();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let kept = logs.clone();
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            while stderr.read_line(&mut line).is_ok_and(|n| n > 0) {
                kept.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        ServeProcess {
            child,
            addr,
            logs,
            reader: Some(reader),
        }
    }

    /// Everything it logged, once it has exited (wait for it first).
    pub fn logs(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
