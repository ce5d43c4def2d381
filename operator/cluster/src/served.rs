//! The certificate a TLS server presents, read without trusting it: after a renewal the
//! operator compares what the API server (6443), etcd (2379) and the kubelet (10250) serve
//! with what the renewal wrote.

use std::{sync::Arc, time::Duration};

use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::{
    connect::install_crypto_provider,
    error::{Error, Result},
};

/// Connects to `host:port`, completes a TLS handshake and returns the DER of the leaf
/// certificate the server presented. Nothing is sent after the handshake.
///
/// The server is NOT verified: this only reads what is presented, to compare it with a
/// certificate known by other means (the renewal's report). Never use the connection for
/// anything else.
pub async fn served_certificate(host: &str, port: u16, timeout: Duration) -> Result<Vec<u8>> {
    let addr = format!("{host}:{port}");
    let fail = |reason: String| Error::ServedCertificate {
        addr: addr.clone(),
        reason,
    };
    install_crypto_provider();
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .ok_or_else(|| fail("no TLS crypto provider is installed".into()))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
        .with_no_client_auth();
    // An address as the SNI name when it is one; kubelets and etcd serve IP SANs.
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| fail(format!("`{host}` is neither an IP address nor a DNS name")))?;
    let handshake = async {
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|e| fail(format!("no TCP connection: {e}")))?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| fail(format!("TLS handshake failed: {e}")))?;
        let (_, session) = tls.get_ref();
        session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| leaf.as_ref().to_vec())
            .ok_or_else(|| fail("the server presented no certificate".into()))
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| fail(format!("no answer within {}s", timeout.as_secs())))?
}

/// Accepts every server certificate and signature: the handshake is only a way to see the
/// certificate presented, which the caller compares with the expected one itself.
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    /// A TLS server on 127.0.0.1 presenting a fresh self-signed certificate; its DER and
    /// port.
    async fn server() -> (Vec<u8>, u16) {
        install_crypto_provider();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(tcp).await;
                });
            }
        });
        (der, port)
    }

    #[tokio::test]
    async fn reads_the_presented_certificate_of_an_untrusted_server() {
        let (der, port) = server().await;
        let got = served_certificate("127.0.0.1", port, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(got, der);
    }

    #[tokio::test]
    async fn a_port_that_does_not_answer_is_an_error_naming_the_address() {
        // A port bound and closed again: nothing listens there.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = served_certificate("127.0.0.1", port, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
        assert!(e.contains("no TCP connection"), "{e}");
    }

    #[tokio::test]
    async fn a_server_that_never_completes_the_handshake_times_out() {
        // Accepts TCP and says nothing.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let conn = listener.accept().await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(conn);
        });
        let e = served_certificate("127.0.0.1", port, Duration::from_millis(300))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no answer within"), "{e}");
        hold.abort();
    }
}
