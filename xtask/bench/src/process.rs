//! Child processes for the load test and the benchmark, killed when dropped.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A child process, killed and reaped on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `callroute serve --schemes <schemes> --listen 127.0.0.1:0 --allow-private-network`
/// and return it with the address its first stdout line announces.
pub fn start_serve(callroute: &Path, schemes: &Path) -> Result<(Process, SocketAddr), String> {
    let workdir = schemes.with_extension("d");
    std::fs::create_dir_all(&workdir).map_err(|e| format!("{}: {e}", workdir.display()))?;
    let mut child = Command::new(callroute)
        .args(["serve", "--schemes"])
        .arg(schemes)
        .args(["--listen", "127.0.0.1:0", "--allow-private-network"])
        // Whatever the build writes in its working directory (the outbox of outcome reports)
        // goes in a directory of this server's own; older builds take the same command.
        .current_dir(&workdir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", callroute.display()))?;
    let stdout = child.stdout.take();
    let process = Process(child);
    let mut line = String::new();
    if let Some(stdout) = stdout {
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
    }
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .ok_or(format!("callroute serve announced no address: {line:?}"))?;
    Ok((process, addr))
}
