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
//! middle of the run to its end.) Prints the figures recorded in RELIABILITY.md.

use callroute_host::crm::{CrmReply, CrmRequest, TestCrm};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WARM_UP: usize = 1000;

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

/// Drive calls `from..to`; returns (outcome counts, latencies in µs, problems).
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
    let schemes = dir.join("schemes.toml");
    std::fs::write(
        &schemes,
        format!(
            "[[scheme]]\nname = \"load\"\nurl = \"{}\"\nmethod = \"GET\"\nresponse_timeout_secs = 0.5\nfallback = \"reception\"\n",
            crm.url("/route")
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
    let _ = std::fs::remove_dir_all(&dir);
    drop(server);

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
    if since_middle > 10.0 {
        return Err(format!(
            "memory grew {since_middle:.1} % over the second half of the run (limit 10 %)"
        ));
    }
    println!(
        "load: every call answered (routed or fallback), none lost, memory flat (within 10 % over \
         the second half)"
    );
    Ok(())
}
