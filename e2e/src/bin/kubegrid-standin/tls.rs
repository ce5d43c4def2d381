//! TLS for the STAND-IN kubelet's servers (its port 10250, the stand-in kube-apiserver): a
//! rustls server configuration (ring provider) built from the files on every handshake, so a
//! certificate or CA bundle rewritten on disk is used by the next connection without a restart,
//! and one HTTP/1.x exchange per connection.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    sync::Arc,
    time::Duration,
};

use rustls::{
    RootCertStore, ServerConfig, ServerConnection, StreamOwned,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};

/// How long a client may take to handshake and send its request.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A server configuration from a certificate chain file and key file, and with `client_ca` a
/// bundle file of CAs: a client must present a certificate that one of them verifies.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            format!(
                "cannot read the serving certificate {}: {e}",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "the serving certificate {} holds no certificate",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the serving key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("cannot read the client CA bundle {}: {e}", ca.display()))?
            {
                let c = c.map_err(|e| format!("the client CA bundle {}: {e}", ca.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("the client CA bundle {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("the client CA bundle {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "the serving certificate {} and its key: {e}",
            cert.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves one connection: the handshake, then one request answered by `answer(path)` with a
/// status and a plain-text body. An error is the handshake's or the request's failure.
pub fn serve(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    answer: &dyn Fn(&str) -> (u16, &'static str),
) -> Result<(), String> {
    let mut tcp = tcp;
    tcp.set_nonblocking(false)
        .and_then(|()| tcp.set_read_timeout(Some(IO_TIMEOUT)))
        .and_then(|()| tcp.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("socket: {e}"))?;
    let mut conn = ServerConnection::new(config).map_err(|e| format!("TLS: {e}"))?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            // Send the alert rustls queued (a bad certificate), so the client learns why.
            let _ = conn.write_tls(&mut tcp);
            return Err(e.to_string());
        }
    }
    let mut stream = StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => {
                let _ = stream.conn.write_tls(&mut stream.sock);
                return Err(e.to_string());
            }
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let path = target.split('?').next().unwrap_or_default();
    let (status, body) = if method == "GET" {
        answer(path)
    } else {
        (405, "method not allowed")
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let reply = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(reply.as_bytes())
        .map_err(|e| e.to_string())?;
    stream.conn.send_close_notify();
    stream.flush().map_err(|e| e.to_string())
}

/// A blocking HTTPS client for the tests of the servers above.
#[cfg(test)]
pub mod client {
    use std::{
        io::{Read, Write},
        net::{SocketAddr, TcpStream},
        sync::Arc,
        time::Duration,
    };

    use rustls::{
        ClientConfig, ClientConnection, RootCertStore, StreamOwned,
        pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    };

    /// `GET path` on a fresh connection to `addr` (server name 127.0.0.1) trusting `server_ca`
    /// and presenting `client` (certificate, key PEM) when given: the served certificate (PEM
    /// of its DER) and the whole reply, or why it failed.
    pub fn get(
        addr: SocketAddr,
        server_ca: &str,
        client: Option<(&str, &str)>,
        path: &str,
    ) -> Result<(Vec<u8>, String), String> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(server_ca.as_bytes()) {
            roots
                .add(c.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![
                        CertificateDer::from_pem_slice(cert.as_bytes())
                            .map_err(|e| e.to_string())?,
                    ],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| e.to_string())?,
                )
                .map_err(|e| e.to_string())?,
            None => builder.with_no_client_auth(),
        };
        let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
        let conn = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, tcp);
        tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .map_err(|e| format!("TLS: {e}"))?;
        let mut reply = Vec::new();
        match tls.read_to_end(&mut reply) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !reply.is_empty() => {}
            Err(e) => return Err(format!("TLS: {e}")),
        }
        let served = tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default();
        Ok((served, String::from_utf8_lossy(&reply).into_owned()))
    }
}
