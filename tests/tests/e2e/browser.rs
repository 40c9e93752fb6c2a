//! A real browser for the console's test: Debian's headless Chromium, driven through its
//! `chromedriver` (WebDriver) with `fantoccini`. The driver runs on a free port of
//! 127.0.0.1 in a process group of its own, which is killed on drop with the browser in it.
//!
//! Chromium and chromedriver come from Debian's `chromium` and `chromium-driver` packages
//! (`.ci/run` installs them when missing); without them the test fails, saying so.

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the driver.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Where Debian installs the browser.
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long to wait for what a page should come to show.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A headless Chromium session.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Start chromedriver and open a session in a new headless Chromium, 1280×900.
    pub async fn start() -> Browser {
        for part in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                std::path::Path::new(part).exists(),
                "{part} is missing: install Debian's chromium and chromium-driver \
                 (apt-get install chromium chromium-driver); .ci/run does"
            );
        }
        let mut driver = {
            use std::os::unix::process::CommandExt;
            Command::new(CHROMEDRIVER)
                .arg("--port=0")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                // Its own group, so that the browser it starts goes with it on drop.
                .process_group(0)
                .spawn()
                .expect("chromedriver starts")
        };
        let port = driver_port(&mut driver);
        let profile =
            std::env::temp_dir().join(format!("callroute-chromium-{}-{port}", std::process::id()));
        let mut browser = Browser {
            client: None,
            driver,
            profile,
        };
        // As root in a container Chromium needs --no-sandbox; the rest keep it off the
        // network it would otherwise try (updates, sync, field trials), which this machine
        // refuses.
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", browser.profile.display()),
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a chromium session");
        browser.client = Some(client);
        browser
    }

    /// The WebDriver client.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("open until closed")
    }

    /// The first element matching `css`, once there is one.
    pub async fn find(&self, css: &str) -> Element {
        self.client()
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element `{css}` within {PATIENCE:?}: {e}"))
    }

    /// Click the first element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click `{css}`: {e}"));
    }

    /// Type `text` into the field matching `css`, replacing what it held.
    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// The text of the element matching `css` once it contains `needle`.
    pub async fn text_with(&self, css: &str, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let text = match self.client().find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return text;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "`{css}` never showed {needle:?} within {PATIENCE:?}; it shows {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's document as it is now (after the script changed it).
    pub async fn document(&self) -> String {
        let html = self
            .client()
            .execute("return document.documentElement.outerHTML", Vec::new())
            .await
            .unwrap();
        html.as_str().unwrap_or_default().to_owned()
    }

    /// End the session: the browser quits.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: the driver and the browser it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The port chromedriver says it listens on ("…was started successfully on port 41235.").
/// The rest of what it prints is read and dropped, so that it never blocks on a full pipe.
fn driver_port(driver: &mut Child) -> u16 {
    let stdout = driver.stdout.take().expect("piped");
    let (port, said) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                let _ = port.send(rest.trim_end_matches('.').parse::<u16>().ok());
            }
        }
    });
    match said.recv_timeout(PATIENCE) {
        Ok(Some(port)) => port,
        Ok(None) => panic!("chromedriver named no port it listens on"),
        Err(_) => panic!("chromedriver did not listen within {PATIENCE:?}"),
    }
}
