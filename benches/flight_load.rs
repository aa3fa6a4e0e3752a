//! A Flight SQL load generator in Rust (arrow-flight's Flight SQL client), for
//! measuring the server rather than the client: N clients, each with its own
//! connection (HTTP/2 channel) and bearer token, run one prepared query with a
//! random integer parameter, back to back or paced, and every answer is
//! checked.
//!
//! ```sh
//! cargo bench --bench flight_load -- --uri grpc://127.0.0.1:50051 \
//!     --user bench --password secret --clients 32 --seconds 30 \
//!     --query "SELECT value FROM bench.small WHERE id = ?" --ids 10000 \
//!     --expected "SELECT id, value FROM bench.small"
//! ```
//!
//! - `--ids N`: parameters drawn from 0..N; `--ids-sql SQL`: from the first
//!   column (int64) of a query's rows. A query without `?` runs unbound.
//! - `--expected SQL`: its first column is the parameter, the others the
//!   answer; every answer must equal it (compared as displayed strings).
//!   Otherwise `--rows N` checks the row count of each answer.
//! - `--rate Q`: each client sends Q queries per second on a fixed schedule
//!   and latency counts from the scheduled send time (no coordinated
//!   omission); without it clients run back to back.
//!
//! Prints a JSON summary on stdout (queries, q/s, latency percentiles in ms,
//! errors, wrong answers, time split between execute (DoPut of the parameter +
//! GetFlightInfo) and DoGet). Paced runs also give `service_*` percentiles,
//! from the actual send: tokio's timer wakes a sleeping client up to a
//! millisecond late, which the scheduled-time latency includes.
//!
//! Build it once with `cargo build --release --bench flight_load` (the release
//! profile shares the library already built for `sluice`; `cargo bench` would
//! build it again in the bench profile).

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

type Client = FlightSqlServiceClient<Channel>;
type AnyError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Debug)]
struct Args {
    uri: String,
    user: Option<String>,
    password: Option<String>,
    clients: usize,
    seconds: f64,
    query: String,
    ids: Option<i64>,
    ids_sql: Option<String>,
    expected: Option<String>,
    rows: Option<usize>,
    rate: Option<f64>,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        uri: "grpc://127.0.0.1:50051".into(),
        user: None,
        password: None,
        clients: 32,
        seconds: 30.0,
        query: String::new(),
        ids: None,
        ids_sql: None,
        expected: None,
        rows: None,
        rate: None,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--bench" {
            continue; // added by `cargo bench`
        }
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--uri" => a.uri = value()?,
            "--user" => a.user = Some(value()?),
            "--password" => a.password = Some(value()?),
            "--clients" => a.clients = num(value()?)? as usize,
            "--seconds" => a.seconds = num(value()?)?,
            "--query" => a.query = value()?,
            "--ids" => a.ids = Some(num(value()?)? as i64),
            "--ids-sql" => a.ids_sql = Some(value()?),
            "--expected" => a.expected = Some(value()?),
            "--rows" => a.rows = Some(num(value()?)? as usize),
            "--rate" => a.rate = Some(num(value()?)?),
            "--threads" => a.threads = (num(value()?)? as usize).max(1),
            other => {
                return Err(format!(
                    "unknown option {other} (see benches/flight_load.rs)"
                ))
            }
        }
    }
    if a.query.is_empty() {
        return Err("--query SQL is required".into());
    }
    if a.query.contains('?') && a.ids.is_none() && a.ids_sql.is_none() {
        return Err("a query with ? needs --ids N or --ids-sql SQL".into());
    }
    Ok(a)
}

async fn connect(args: &Args) -> Result<Client, AnyError> {
    let uri = args
        .uri
        .replace("grpc+tcp://", "http://")
        .replace("grpc://", "http://");
    let channel = Endpoint::from_shared(uri)?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let mut client = FlightSqlServiceClient::new(channel);
    if let (Some(u), Some(p)) = (&args.user, &args.password) {
        client.handshake(u, p).await?;
    }
    Ok(client)
}

async fn fetch_all(
    client: &mut Client,
    info: arrow_flight::FlightInfo,
) -> Result<Vec<RecordBatch>, AnyError> {
    let mut out = Vec::new();
    for ep in info.endpoint {
        let ticket = ep.ticket.ok_or("endpoint without a ticket")?;
        let stream = client.do_get(ticket).await?;
        let batches: Vec<RecordBatch> = stream.try_collect().await?;
        out.extend(batches);
    }
    Ok(out)
}

async fn query_all(client: &mut Client, sql: &str) -> Result<Vec<RecordBatch>, AnyError> {
    let info = client.execute(sql.to_string(), None).await?;
    fetch_all(client, info).await
}

/// Every row of `batches` from column `from` on, as displayed strings.
fn rows_as_strings(batches: &[RecordBatch], from: usize) -> Result<Vec<String>, AnyError> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts = b.columns()[from..]
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..b.num_rows() {
            let cells: Vec<String> = fmts.iter().map(|f| f.value(row).to_string()).collect();
            out.push(cells.join("|"));
        }
    }
    Ok(out)
}

fn int64_column(batches: &[RecordBatch]) -> Result<Vec<i64>, AnyError> {
    let mut out = Vec::new();
    for b in batches {
        let col = arrow::compute::cast(b.column(0), &DataType::Int64)?;
        out.extend(col.as_primitive::<Int64Type>().iter().flatten());
    }
    Ok(out)
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u64>,
    /// From the actual send (paced clients: without the wait for a late send).
    service_us: Vec<u64>,
    execute_us: u64,
    do_get_us: u64,
    errors: u64,
    wrong: u64,
    first_errors: Vec<String>,
}

/// A small deterministic generator (xorshift), one per client.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn run_client(
    idx: usize,
    args: Arc<Args>,
    ids: Arc<Vec<i64>>,
    expected: Arc<Option<HashMap<i64, String>>>,
    start: Arc<tokio::sync::Barrier>,
) -> Result<Stats, AnyError> {
    let mut client = connect(&args).await?;
    let mut stmt = client.prepare(args.query.clone(), None).await?;
    let param_schema = Arc::new(Schema::new(vec![Field::new("0", DataType::Int64, false)]));
    let bound = args.query.contains('?');
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (idx as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut stats = Stats::default();
    start.wait().await;
    let began = Instant::now();
    let run_for = Duration::from_secs_f64(args.seconds);
    let interval = args.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    // Paced clients start at staggered offsets so they do not send in lockstep.
    let mut next_send = began
        + interval
            .map(|i| i.mul_f64((rng.next() % 1000) as f64 / 1000.0))
            .unwrap_or_default();
    loop {
        if interval.is_some() {
            let now = Instant::now();
            if next_send > now {
                tokio::time::sleep(next_send - now).await;
            }
            if next_send.duration_since(began) >= run_for {
                break;
            }
        } else if began.elapsed() >= run_for {
            break;
        }
        let t0 = interval.map(|_| next_send).unwrap_or_else(Instant::now);
        let id = if ids.is_empty() {
            0
        } else {
            ids[(rng.next() % ids.len() as u64) as usize]
        };
        if bound {
            let batch = RecordBatch::try_new(
                param_schema.clone(),
                vec![Arc::new(Int64Array::from(vec![id])) as Arc<dyn Array>],
            )?;
            stmt.set_parameters(batch)?;
        }
        let t_exec = Instant::now();
        let answer = async {
            let info = stmt.execute().await?;
            let t_get = Instant::now();
            let batches = fetch_all(&mut client, info).await?;
            Ok::<_, AnyError>((t_get, batches))
        }
        .await;
        let done = Instant::now();
        match answer {
            Ok((t_get, batches)) => {
                stats.execute_us += (t_get - t_exec).as_micros() as u64;
                stats.do_get_us += (done - t_get).as_micros() as u64;
                let ok = match expected.as_ref() {
                    Some(map) => {
                        let got = rows_as_strings(&batches, 0)?;
                        match map.get(&id) {
                            Some(want) => got.len() == 1 && &got[0] == want,
                            None => got.is_empty(),
                        }
                    }
                    None => match args.rows {
                        Some(n) => batches.iter().map(|b| b.num_rows()).sum::<usize>() == n,
                        None => true,
                    },
                };
                if !ok {
                    stats.wrong += 1;
                    if stats.first_errors.len() < 3 {
                        stats.first_errors.push(format!(
                            "wrong answer for id {id}: {:?}",
                            rows_as_strings(&batches, 0)?
                        ));
                    }
                }
                stats.latencies_us.push((done - t0).as_micros() as u64);
                stats.service_us.push((done - t_exec).as_micros() as u64);
            }
            Err(e) => {
                stats.errors += 1;
                if stats.first_errors.len() < 3 {
                    stats.first_errors.push(e.to_string());
                }
            }
        }
        if let Some(i) = interval {
            next_send += i;
        }
    }
    let _ = stmt.close().await;
    Ok(stats)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

async fn run(args: Args) -> Result<(), AnyError> {
    let args = Arc::new(args);
    let mut setup = connect(&args).await?;
    let ids: Vec<i64> = match (&args.ids_sql, args.ids) {
        (Some(sql), _) => int64_column(&query_all(&mut setup, sql).await?)?,
        (None, Some(n)) => (0..n).collect(),
        (None, None) => Vec::new(),
    };
    if args.query.contains('?') && ids.is_empty() {
        return Err("no parameter values (--ids / --ids-sql gave none)".into());
    }
    let expected = match &args.expected {
        Some(sql) => {
            let batches = query_all(&mut setup, sql).await?;
            let keys = int64_column(&batches)?;
            let values = rows_as_strings(&batches, 1)?;
            Some(keys.into_iter().zip(values).collect::<HashMap<_, _>>())
        }
        None => None,
    };
    let ids = Arc::new(ids);
    let expected = Arc::new(expected);
    let barrier = Arc::new(tokio::sync::Barrier::new(args.clients));
    let mut tasks = Vec::new();
    for i in 0..args.clients {
        tasks.push(tokio::spawn(run_client(
            i,
            args.clone(),
            ids.clone(),
            expected.clone(),
            barrier.clone(),
        )));
    }
    let started = Instant::now();
    let mut all = Stats::default();
    let mut failed_clients = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(s)) => {
                all.latencies_us.extend(s.latencies_us);
                all.service_us.extend(s.service_us);
                all.execute_us += s.execute_us;
                all.do_get_us += s.do_get_us;
                all.errors += s.errors;
                all.wrong += s.wrong;
                for e in s.first_errors {
                    if all.first_errors.len() < 5 {
                        all.first_errors.push(e);
                    }
                }
            }
            Ok(Err(e)) => failed_clients.push(e.to_string()),
            Err(e) => failed_clients.push(e.to_string()),
        }
    }
    let elapsed = started
        .elapsed()
        .as_secs_f64()
        .min(args.seconds.max(0.001) + 0.5);
    all.latencies_us.sort_unstable();
    all.service_us.sort_unstable();
    let n = all.latencies_us.len();
    let mean = |us: u64| {
        if n == 0 {
            0.0
        } else {
            us as f64 / n as f64 / 1000.0
        }
    };
    let summary = serde_json::json!({
        "query": args.query,
        "clients": args.clients,
        "rate_per_client": args.rate,
        "seconds": args.seconds,
        "queries": n,
        "qps": n as f64 / args.seconds,
        "p50_ms": percentile(&all.latencies_us, 50.0),
        "p90_ms": percentile(&all.latencies_us, 90.0),
        "p99_ms": percentile(&all.latencies_us, 99.0),
        "p999_ms": percentile(&all.latencies_us, 99.9),
        "max_ms": percentile(&all.latencies_us, 100.0),
        "service_p50_ms": percentile(&all.service_us, 50.0),
        "service_p99_ms": percentile(&all.service_us, 99.0),
        "mean_execute_ms": mean(all.execute_us),
        "mean_do_get_ms": mean(all.do_get_us),
        "errors": all.errors,
        "wrong": all.wrong,
        "first_errors": all.first_errors,
        "failed_clients": failed_clients,
        "wall_seconds": elapsed,
    });
    println!("{summary}");
    if !failed_clients.is_empty() || all.errors > 0 || all.wrong > 0 {
        return Err(format!(
            "{} failed clients, {} errors, {} wrong answers",
            failed_clients.len(),
            all.errors,
            all.wrong
        )
        .into());
    }
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("flight_load: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flight_load: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("flight_load: {e}");
        std::process::exit(1);
    }
}
