//! `sluice worker`: a worker of a cluster until Ctrl-C or SIGTERM.

use super::args::WorkerArgs;
use super::stdio::note;
use super::Context;
use sluice::server::worker::{serve_worker, WorkerOptions};
use std::io::Write;

pub async fn run(ctx: &Context, args: WorkerArgs) -> anyhow::Result<()> {
    let ip: std::net::IpAddr = args.host.parse().map_err(|_| {
        anyhow::anyhow!(
            "--host `{}` is not an IP address: use 127.0.0.1, 0.0.0.0 or this machine's address",
            args.host
        )
    })?;
    let options = WorkerOptions {
        addr: std::net::SocketAddr::new(ip, args.port),
        memory_limit: None,
    };
    serve_worker(
        ctx.warehouse.clone(),
        options,
        |addr| {
            // Scripts read the address from this line.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "sluice worker: listening on http://{addr}");
            let _ = out.flush();
            note(format!(
                "sluice worker: warehouse {}; stop with Ctrl-C",
                ctx.warehouse_uri
            ));
        },
        super::serve::shutdown_signal(),
    )
    .await?;
    Ok(())
}
