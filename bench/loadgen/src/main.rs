//! `qa-loadgen`: open-loop load at a fixed rate, for "what happens at 2× the sustainable
//! rate". wrk is closed-loop (each connection waits for its answer before the next send), so it
//! can never offer more than the server absorbs; here requests are scheduled at a fixed rate
//! whatever the server does, and each latency is measured from its *scheduled* send time, so
//! queueing shows (no coordinated omission).
//!
//! Usage: qa-loadgen URL_BASE RATE SECONDS CONNECTIONS REQUESTS_FILE
//! REQUESTS_FILE: one request per line, `METHOD<TAB>PATH<TAB>AUTH_KEY_OR_-<TAB>BODY_OR_-`;
//! lines are used round-robin. Prints one `RESULT k=v …` line.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};

struct Req {
    method: hyper::Method,
    path: String,
    key: Option<String>,
    body: Option<Bytes>,
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
}

fn parse_requests(text: &str) -> Vec<Req> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Req {
                method: f[0].parse().expect("method"),
                path: f[1].to_owned(),
                key: f.get(2).filter(|k| **k != "-").map(|k| (*k).to_owned()),
                body: f.get(3).filter(|b| **b != "-").map(|b| Bytes::from((*b).to_owned())),
            }
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: qa-loadgen URL_BASE RATE SECONDS CONNECTIONS REQUESTS_FILE");
        std::process::exit(2);
    }
    let base = args[1].trim_end_matches('/').to_owned();
    let rate: f64 = args[2].parse().expect("rate");
    let secs: f64 = args[3].parse().expect("seconds");
    let conns: usize = args[4].parse().expect("connections");
    let reqs = Arc::new(parse_requests(&std::fs::read_to_string(&args[5]).expect("requests file")));
    let authority = base.trim_start_matches("http://").to_owned();

    // Tickets carry their scheduled send time; workers take them as soon as they are free.
    let (tx, rx) = mpsc::unbounded_channel::<(Instant, usize)>();
    let rx = Arc::new(Mutex::new(rx));
    let stats = Arc::new(std::sync::Mutex::new(Stats::default()));
    let mut workers = Vec::new();
    for _ in 0..conns {
        let (rx, stats, reqs, authority) = (rx.clone(), stats.clone(), reqs.clone(), authority.clone());
        workers.push(tokio::spawn(async move {
            let mut sender = None;
            loop {
                let Some((scheduled, i)) = rx.lock().await.recv().await else { return };
                if sender.is_none() {
                    match tokio::net::TcpStream::connect(&authority).await {
                        Ok(stream) => {
                            let _ = stream.set_nodelay(true);
                            if let Ok((s, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                                tokio::spawn(conn);
                                sender = Some(s);
                            }
                        }
                        Err(_) => {}
                    }
                }
                let Some(s) = sender.as_mut() else {
                    stats.lock().map(|mut st| st.errors += 1).ok();
                    continue;
                };
                let r = &reqs[i % reqs.len()];
                let mut b = Request::builder().method(r.method.clone()).uri(&r.path).header("host", &authority);
                if let Some(k) = &r.key {
                    b = b.header("authorization", format!("Bearer {k}"));
                }
                if r.body.is_some() {
                    b = b.header("content-type", "application/json");
                }
                let req = b.body(Full::new(r.body.clone().unwrap_or_default())).expect("request");
                let outcome = match s.send_request(req).await {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        let _ = res.into_body().collect().await;
                        Some(status)
                    }
                    Err(_) => None,
                };
                let lat = u64::try_from(scheduled.elapsed().as_micros()).unwrap_or(u64::MAX);
                if let Ok(mut st) = stats.lock() {
                    match outcome {
                        Some(status) => {
                            st.latencies_us.push(lat);
                            *st.statuses.entry(status).or_default() += 1;
                        }
                        None => st.errors += 1,
                    }
                }
                if outcome.is_none() {
                    sender = None;
                }
            }
        }));
    }
    let start = Instant::now();
    let total = (rate * secs) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    for i in 0..total {
        let at = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(at.into()).await;
        if tx.send((at, i)).is_err() {
            break;
        }
    }
    drop(tx);
    // Give late answers a bounded time; what is still missing after that counts as lost.
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    for w in workers {
        tokio::select! {
            _ = w => {}
            () = &mut deadline => break,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let st = stats.lock().expect("stats");
    let mut lat = st.latencies_us.clone();
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0) as f64 / 1000.0;
    let done: u64 = st.statuses.values().sum();
    let ok: u64 = st.statuses.iter().filter(|(s, _)| (200..300).contains(*s)).map(|(_, n)| n).sum();
    let shed: u64 = st.statuses.iter().filter(|(s, _)| **s == 503 || **s == 429).map(|(_, n)| n).sum();
    let statuses: Vec<String> = st.statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
    println!(
        "RESULT offered_rps={rate:.0} sent={total} answered={done} ok={ok} shed={shed} lost={} ok_rps={:.0} shed_share={:.3} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} statuses={}",
        st.errors + (total as u64).saturating_sub(done + st.errors),
        ok as f64 / elapsed,
        if done == 0 { 0.0 } else { shed as f64 / done as f64 },
        pct(0.50),
        pct(0.99),
        lat.last().copied().unwrap_or(0) as f64 / 1000.0,
        statuses.join(",")
    );
}
