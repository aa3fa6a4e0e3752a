//! `sluice serve`: the warehouse over Arrow Flight SQL until Ctrl-C or SIGTERM.

use super::args::ServeArgs;
use super::stdio::note;
use super::Context;
use sluice::server::ServeOptions;
use std::io::Write;

pub async fn run(ctx: &Context, args: ServeArgs) -> anyhow::Result<()> {
    let options = ServeOptions::from_config(
        &ctx.project.config.server,
        &ctx.project.root,
        args.host.as_deref(),
        args.port,
    )?;
    let engine = ctx.engine().await?;
    let users = options.users.len();
    sluice::server::serve(
        engine,
        options,
        |addr, tls| {
            let scheme = if tls { "grpc+tls" } else { "grpc" };
            // Scripts read the address from this line. Plain stdout, not
            // `stdio::stdout`: a reader that went away neither stops the
            // server nor hides a later error.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "sluice serve: listening on {scheme}://{addr}");
            let _ = out.flush();
            note(format!(
                "sluice serve: {users} user(s); warehouse {}; stop with Ctrl-C",
                ctx.warehouse_uri
            ));
        },
        shutdown_signal(),
    )
    .await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
pub(super) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
