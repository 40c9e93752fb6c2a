//! The load test: every call answered, none lost, memory flat.
//!
//! Starts a CRM on 127.0.0.1 that fails 20 % of the time in mixed ways (5 % each: 503, an
//! answer after the deadline, an HTML error page, 204), runs `callroute serve` as its own
//! process with a scheme whose fallback is `reception`, and drives `--calls` calls (default
//! 10,000) at `--concurrency` (default 200) through it. It checks that every call got a 200
//! with outcome `routed` or `fallback`, that the outcomes match what the CRM did, and that the
//! server's memory is flat: its resident memory after the run is within 10 % of what it was
//! halfway through. (The growth since a warm-up of 1,000 calls is printed too: memory settles
//! over the first few thousand calls, as allocator arenas, pooled instance slots and kept-alive
//! connections reach their working size, so a leak shows as growth that goes on, from the
//! middle of the run to its end.)
//!
//! Then an outage: a second tenant, `hang`, whose CRM accepts connections and never answers
//! (its breaker off, the worst case for the others), gets [`OUTAGE_CALLS_IN_FLIGHT`] calls at
//! once, again and again, while `load` runs [`OUTAGE_CALLS`] more calls. Every call of `load`
//! must still be answered as its CRM answered it, and every call of `hang` within its deadline
//! and a second. Prints the figures recorded in RELIABILITY.md.

use callroute_host::crm::{CrmReply, CrmRequest, TestCrm};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WARM_UP: usize = 1000;
/// The calls of the hanging tenant kept in flight during the outage: more than its share.
const OUTAGE_CALLS_IN_FLIGHT: usize = 600;
/// The healthy tenant's calls during the outage.
const OUTAGE_CALLS: usize = 4000;
/// The hanging tenant's deadline.
const HANG_DEADLINE: Duration = Duration::from_secs(2);

struct Options {
    calls: usize,
    concurrency: usize,
    callroute: PathBuf,
}

fn options(args: Vec<String>) -> Result<Options, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let default_binary = ["release", "debug"]
        .iter()
        .map(|p| root.join("target").join(p).join("callroute"))
        .find(|p| p.exists())
        .unwrap_or_else(|| root.join("target/release/callroute"));
    let mut options = Options {
        calls: 10_000,
        concurrency: 200,
        callroute: default_binary,
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--calls" => options.calls = value.parse().map_err(|_| format!("--calls {value}"))?,
            "--concurrency" => {
                options.concurrency = value
                    .parse()
                    .map_err(|_| format!("--concurrency {value}"))?
            }
            "--callroute" => options.callroute = value.into(),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(options)
}

/// How the CRM treats call number `n` (from the `call_id`): 80 % answer, 20 % fail.
fn crm_answer(request: &CrmRequest) -> CrmReply {
    let n: usize = request
        .query_pairs()
        .iter()
        .find(|(k, _)| k == "call_id")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    match n % 20 {
        0 => CrmReply::status(503),
        1 => CrmReply::html("380123456789").after(Duration::from_millis(800)),
        2 => CrmReply::new(200, "text/html", "<html><body>Fatal error</body></html>"),
        3 => CrmReply::status(204),
        _ => CrmReply::html("380123456789"),
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Drive calls `from..to` of scheme `load`; returns (outcome counts, latencies in µs,
/// problems).
fn drive(
    addr: std::net::SocketAddr,
    from: usize,
    to: usize,
    concurrency: usize,
) -> (Vec<(String, usize)>, Vec<u64>, Vec<String>) {
    let next = Arc::new(AtomicUsize::new(from));
    let results = Arc::new(Mutex::new((
        std::collections::BTreeMap::new(),
        Vec::new(),
        Vec::new(),
    )));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let next = next.clone();
            let results = results.clone();
            std::thread::spawn(move || {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= to {
                        break;
                    }
                    let path = format!(
                        "/v1/route/load?call_id={n}&caller=%2B380501112233&callee=380441234567"
                    );
                    let start = Instant::now();
                    let answer = callroute_tests::client::request(addr, "GET", &path, &[], b"");
                    let micros = start.elapsed().as_micros() as u64;
                    let mut r = results.lock().unwrap();
                    match answer {
                        Ok(response) if response.status == 200 => {
                            let outcome = response.json()["outcome"]
                                .as_str()
                                .unwrap_or("?")
                                .to_owned();
                            let expected = if n % 20 < 4 { "fallback" } else { "routed" };
                            if outcome != expected {
                                r.2.push(format!(
                                    "call {n}: {outcome}, expected {expected}: {}",
                                    response.text()
                                ));
                            }
                            *r.0.entry(outcome).or_insert(0) += 1;
                            r.1.push(micros);
                        }
                        Ok(response) => r.2.push(format!(
                            "call {n}: HTTP {} {}",
                            response.status,
                            response.text()
                        )),
                        Err(e) => r.2.push(format!("call {n}: {e}")),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    let (counts, latencies, problems) =
        Arc::try_unwrap(results).ok().unwrap().into_inner().unwrap();
    (counts.into_iter().collect(), latencies, problems)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

/// Run the load test.
pub fn run(args: Vec<String>) -> Result<(), String> {
    let options = options(args)?;
    if !options.callroute.exists() {
        return Err(format!(
            "{} does not exist; build it (cargo build --release -p callroute-host) or pass --callroute",
            options.callroute.display()
        ));
    }
    let crm = TestCrm::start(crm_answer).map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("callroute-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let hanging = TestCrm::start(|_| CrmReply::html("101").after(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let schemes = dir.join("schemes.toml");
    std::fs::write(
        &schemes,
        format!(
            "[[scheme]]\nname = \"load\"\nurl = \"{}\"\nmethod = \"GET\"\nresponse_timeout_secs = 0.5\nfallback = \"reception\"\n\
             [[scheme]]\nname = \"hang\"\nurl = \"{}\"\nmethod = \"GET\"\nresponse_timeout_secs = {}\nfallback = \"reception\"\nbreaker_failures = 0\n",
            crm.url("/route"),
            hanging.url("/route"),
            HANG_DEADLINE.as_secs(),
        ),
    )
    .map_err(|e| e.to_string())?;
    let (server, addr) = crate::process::start_serve(&options.callroute, &schemes)?;

    println!(
        "load: {} calls at concurrency {} through {}",
        options.calls,
        options.concurrency,
        options.callroute.display()
    );
    let warm = WARM_UP.min(options.calls);
    let (_, _, problems) = drive(addr, 0, warm, options.concurrency);
    let rss_warm = rss_kib(server.0.id());
    let start = Instant::now();
    let middle = warm + (options.calls - warm) / 2;
    let (first_counts, mut latencies, mut more) = drive(addr, warm, middle, options.concurrency);
    let rss_middle = rss_kib(server.0.id());
    let (second_counts, mut second_latencies, mut yet_more) =
        drive(addr, middle, options.calls, options.concurrency);
    let elapsed = start.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = rss_kib(server.0.id());
    let outage = outage(addr, options.calls, options.concurrency)?;
    let mut problems = problems;
    problems.append(&mut more);
    problems.append(&mut yet_more);
    latencies.append(&mut second_latencies);
    latencies.sort_unstable();
    let mut counts = std::collections::BTreeMap::new();
    for (outcome, n) in first_counts.into_iter().chain(second_counts) {
        *counts.entry(outcome).or_insert(0) += n;
    }

    let answered: usize = counts.values().sum();
    let measured = options.calls - warm;
    let growth = |from: u64| {
        if from > 0 {
            (rss_after as f64 - from as f64) / from as f64 * 100.0
        } else {
            0.0
        }
    };
    let (since_warm_up, since_middle) = (growth(rss_warm), growth(rss_middle));
    println!(
        "answered: {answered} of {measured} measured calls (plus {warm} warm-up) in {:.1} s, {:.0} calls/s",
        elapsed.as_secs_f64(),
        measured as f64 / elapsed.as_secs_f64()
    );
    for (outcome, n) in &counts {
        println!("  {outcome}: {n}");
    }
    println!(
        "latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    println!(
        "server RSS: {rss_warm} KiB after warm-up, {rss_middle} KiB halfway, {rss_after} KiB after \
         the run ({since_middle:+.1} % since halfway, {since_warm_up:+.1} % since warm-up)"
    );
    outage.print();
    let _ = std::fs::remove_dir_all(&dir);
    drop(server);
    drop(hanging);

    if !problems.is_empty() {
        for p in problems.iter().take(10) {
            eprintln!("  {p}");
        }
        return Err(format!(
            "{} calls were not answered as expected",
            problems.len()
        ));
    }
    if answered != measured {
        return Err(format!("{} calls lost", measured - answered));
    }
    outage.check()?;
    if since_middle > 10.0 {
        return Err(format!(
            "memory grew {since_middle:.1} % over the second half of the run (limit 10 %)"
        ));
    }
    println!(
        "load: every call answered (routed or fallback), none lost, memory flat (within 10 % over \
         the second half); during the outage every call of both tenants answered as expected"
    );
    Ok(())
}

/// What the outage did to each tenant.
struct Outage {
    /// The healthy tenant's calls: outcome counts, latencies (µs), problems.
    healthy: (Vec<(String, usize)>, Vec<u64>, Vec<String>),
    /// The hanging tenant's calls by error kind, and the longest any took.
    hanging: std::collections::BTreeMap<String, usize>,
    /// The longest a call of `hang` took to route, as the server measured it.
    hanging_longest: Duration,
    /// The longest one took as its client saw it, connecting included.
    hanging_longest_seen: Duration,
    hanging_problems: Vec<String>,
}

/// The outage (see the module docs): `hang`'s calls kept in flight while `load` runs.
fn outage(addr: std::net::SocketAddr, base: usize, concurrency: usize) -> Result<Outage, String> {
    // This process holds both ends of every connection to the hanging CRM, beside its own
    // calls: more than the usual 1,024 descriptors. (The helper raises the soft limit.)
    callroute_host::serve::connection_limit(OUTAGE_CALLS_IN_FLIGHT + concurrency + 256);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let results = Arc::new(Mutex::new((
        std::collections::BTreeMap::new(),
        Duration::ZERO,
        Vec::new(),
        Duration::ZERO,
    )));
    let flood: Vec<_> = (0..OUTAGE_CALLS_IN_FLIGHT)
        .map(|i| {
            let (stop, results) = (stop.clone(), results.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let path = format!("/v1/route/hang?call_id=h{i}-{n}&caller=%2B380501112233");
                    n += 1;
                    let start = Instant::now();
                    let answer = callroute_tests::client::request(addr, "GET", &path, &[], b"");
                    let took = start.elapsed();
                    let mut r = results.lock().unwrap();
                    match answer {
                        Ok(response) if response.status == 200 => {
                            let body = response.json();
                            // The server's own measure: the client's includes waiting for a
                            // connection, which a flood of reconnecting clients delays.
                            let routing = body["elapsed_ms"].as_u64().unwrap_or(u64::MAX);
                            r.1 = r.1.max(Duration::from_millis(routing));
                            r.3 = r.3.max(took);
                            let kind = body["error"]["kind"].as_str().unwrap_or("?").to_owned();
                            if body["outcome"] != "fallback" {
                                r.2.push(format!("hang: {}", response.text()));
                            }
                            *r.0.entry(kind).or_insert(0) += 1;
                        }
                        Ok(response) => r.2.push(format!("hang: HTTP {}", response.status)),
                        Err(e) => r.2.push(format!("hang: {e}")),
                    }
                    drop(r);
                    // A call turned away comes back at once: do not flood the connection table.
                    if took < Duration::from_millis(100) {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        })
        .collect();
    // Let the hanging calls fill the tenant's share.
    std::thread::sleep(Duration::from_secs(1));
    let start = base + 1_000_000;
    let healthy = drive(addr, start, start + OUTAGE_CALLS, concurrency);
    stop.store(true, Ordering::SeqCst);
    for thread in flood {
        let _ = thread.join();
    }
    let (hanging, hanging_longest, hanging_problems, hanging_longest_seen) =
        Arc::try_unwrap(results)
            .map_err(|_| "the outage's threads are still running")?
            .into_inner()
            .map_err(|e| e.to_string())?;
    Ok(Outage {
        healthy,
        hanging,
        hanging_longest,
        hanging_longest_seen,
        hanging_problems,
    })
}

impl Outage {
    fn print(&self) {
        let (counts, latencies, problems) = &self.healthy;
        let mut latencies = latencies.clone();
        latencies.sort_unstable();
        let answered: usize = counts.iter().map(|(_, n)| n).sum();
        let as_expected = answered.saturating_sub(problems.len());
        println!(
            "outage: tenant `hang` ({OUTAGE_CALLS_IN_FLIGHT} calls in flight at a time on a CRM \
             that never answers) beside tenant `load` ({OUTAGE_CALLS} calls):"
        );
        let routed = counts
            .iter()
            .find(|(outcome, _)| outcome == "routed")
            .map_or(0, |(_, n)| *n);
        println!(
            "  load: {as_expected} of {OUTAGE_CALLS} answered as its CRM answered ({:.1} %; routed {routed}, {:.1} %, the rest its CRM's own failures), p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            as_expected as f64 * 100.0 / OUTAGE_CALLS as f64,
            routed as f64 * 100.0 / OUTAGE_CALLS as f64,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0)
        );
        let total: usize = self.hanging.values().sum();
        let kinds: Vec<String> = self
            .hanging
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!(
            "  hang: {total} calls, all with the fallback ({}), the longest {:.2} s to route (deadline {} s; {:.2} s as its client saw it, connecting included)",
            kinds.join(", "),
            self.hanging_longest.as_secs_f64(),
            HANG_DEADLINE.as_secs(),
            self.hanging_longest_seen.as_secs_f64()
        );
    }

    fn check(&self) -> Result<(), String> {
        let (counts, _, problems) = &self.healthy;
        let answered: usize = counts.iter().map(|(_, n)| n).sum();
        if !problems.is_empty() || answered != OUTAGE_CALLS {
            for p in problems.iter().take(10) {
                eprintln!("  {p}");
            }
            return Err(format!(
                "during the outage, {} of the healthy tenant's {OUTAGE_CALLS} calls were not \
                 answered as expected",
                OUTAGE_CALLS - answered + problems.len()
            ));
        }
        if !self.hanging_problems.is_empty() {
            for p in self.hanging_problems.iter().take(10) {
                eprintln!("  {p}");
            }
            return Err(format!(
                "{} of the hanging tenant's calls got no fallback",
                self.hanging_problems.len()
            ));
        }
        if self.hanging_longest > HANG_DEADLINE + Duration::from_secs(1) {
            return Err(format!(
                "a call of the hanging tenant took {:.2} s, past its deadline and a second",
                self.hanging_longest.as_secs_f64()
            ));
        }
        Ok(())
    }
}
