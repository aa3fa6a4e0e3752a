//! `sluice docs serve`: the generated site over HTTP: GET and HEAD of the
//! site's four files (`index.html`, `app.js`, `app.css`, `data.js`) and
//! nothing else (not other files of the folder, not symlinks' targets).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the site is made of, all that is served.
pub const SITE_FILES: [&str; 4] = ["index.html", "app.js", "app.css", "data.js"];

/// Largest request head read.
const MAX_HEAD: usize = 16 * 1024;

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// The file a request path names inside `root`: `None` for anything with
/// `..`, a backslash or a NUL, or not a plain file name chain.
pub fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let path = path.trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    SITE_FILES.contains(&path).then(|| root.join(path))
}

async fn answer(stream: &mut TcpStream, root: &Path) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if head.len() > MAX_HEAD {
            return respond(
                stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"request too large",
                true,
            )
            .await;
        }
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let send_body = method != "HEAD";
    if method != "GET" && method != "HEAD" {
        return respond(
            stream,
            "405 Method Not Allowed",
            "text/plain",
            b"only GET",
            true,
        )
        .await;
    }
    let Some(path) = resolve(root, target) else {
        return respond(
            stream,
            "404 Not Found",
            "text/plain",
            b"not found",
            send_body,
        )
        .await;
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => respond(stream, "200 OK", content_type(&path), &bytes, send_body).await,
        Err(_) => {
            respond(
                stream,
                "404 Not Found",
                "text/plain",
                b"not found",
                send_body,
            )
            .await
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &[u8],
    send_body: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if send_body {
        stream.write_all(body).await?;
    }
    stream.shutdown().await
}

/// Binds `host:port` (port 0: any free one) for the site in `root`.
pub async fn bind(host: &str, port: u16) -> Result<TcpListener> {
    TcpListener::bind((host, port)).await.map_err(|e| {
        Error::Usage(format!(
            "cannot listen on {host}:{port}: {e}; pick another --port"
        ))
    })
}

/// Serves `root` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, root: PathBuf) -> Result<()> {
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("docs serve: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let root = root.clone();
        tokio::spawn(async move {
            let r = tokio::time::timeout(
                std::time::Duration::from_secs(30),
                answer(&mut stream, &root),
            )
            .await;
            if let Ok(Err(e)) = r {
                tracing::debug!("docs serve: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_only_files_inside_the_site() {
        let root = Path::new("/site");
        assert_eq!(resolve(root, "/"), Some(PathBuf::from("/site/index.html")));
        assert_eq!(
            resolve(root, "/app.js?v=1"),
            Some(PathBuf::from("/site/app.js"))
        );
        assert_eq!(resolve(root, "/../etc/passwd"), None);
        assert_eq!(resolve(root, "/a/../../x"), None);
        assert_eq!(resolve(root, "/.git/config"), None);
        assert_eq!(resolve(root, "/a\\..\\b"), None);
        assert_eq!(resolve(root, "//etc/passwd"), None);
        assert_eq!(resolve(root, "/sluice.toml"), None);
        assert_eq!(
            resolve(root, "/data.js"),
            Some(PathBuf::from("/site/data.js"))
        );
    }
}
