//! The secure client port and enforced authentication, in process and byte
//! by byte: a TLS client (tokio-rustls) with and without a client
//! certificate, the x509 identity the certificate gives (seen with whoami),
//! what enforcement answers, and the settings a server refuses to start with.
//! Certificates are made here with rcgen (throwaway keys).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use canopy::tls::{ClientAuth, TlsSettings};
use canopy_protocol::{
    ClientInfo, ConnectResponse, GetDataRequest, Jute, OpCode, ReplyHeader, Request, Response,
    WhoAmIResponse,
};
use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A CA, a server certificate for 127.0.0.1 and a client certificate with
/// the subject C=US, O=Canopy, OU=Registry, CN=app-a, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    client_cert: rcgen::Certificate,
    client_key: KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Canopy Test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let server_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params.distinguished_name = rcgen::DistinguishedName::new();
        client_params
            .distinguished_name
            .push(DnType::CountryName, "US");
        client_params
            .distinguished_name
            .push(DnType::OrganizationName, "Canopy");
        client_params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "Registry");
        client_params
            .distinguished_name
            .push(DnType::CommonName, "app-a");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();

        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();
        write("ca.pem", ca.pem());
        write("server.pem", server.pem());
        write("server.key", server_key.serialize_pem());
        Pki {
            dir,
            ca,
            client_cert,
            client_key,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn settings(&self, client_auth: ClientAuth) -> TlsSettings {
        TlsSettings {
            cert_file: self.path("server.pem"),
            key_file: self.path("server.key"),
            ca_file: Some(self.path("ca.pem")),
            client_auth,
            super_user: None,
        }
    }

    /// A TLS connector trusting the CA, presenting the client certificate
    /// when `with_cert`.
    fn connector(&self, with_cert: bool) -> TlsConnector {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = if with_cert {
            builder
                .with_client_auth_cert(
                    vec![self.client_cert.der().clone()],
                    PrivateKeyDer::try_from(self.client_key.serialize_der()).unwrap(),
                )
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        TlsConnector::from(Arc::new(config))
    }
}

/// Frames over any stream, with every read bounded.
struct Wire<S> {
    stream: S,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    async fn frame(&mut self) -> Option<Bytes> {
        loop {
            if self.buf.len() >= 4 {
                let len = i32::from_be_bytes(self.buf[..4].try_into().unwrap()) as usize;
                if self.buf.len() >= 4 + len {
                    self.buf.advance(4);
                    return Some(self.buf.split_to(len).freeze());
                }
            }
            let read = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("the server answers in time");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn handshake(&mut self) -> ConnectResponse {
        let frame = with_length(&new_session_request(2000).to_bytes());
        self.stream.write_all(&frame).await.unwrap();
        let reply = self.frame().await.expect("a connect response");
        ConnectResponse::from_bytes(&reply).unwrap()
    }

    /// Sends a request; returns the reply header and the raw body, or None
    /// if the connection was closed instead.
    async fn call(&mut self, xid: i32, request: &Request) -> Option<(ReplyHeader, Bytes)> {
        self.stream
            .write_all(&request_frame(xid, request))
            .await
            .ok()?;
        let frame = self.frame().await?;
        let (rest, header) = ReplyHeader::decode(&frame).unwrap();
        let body = frame.slice(frame.len() - rest.len()..);
        Some((header, body))
    }
}

async fn tls_wire(
    pki: &Pki,
    addr: std::net::SocketAddr,
    with_cert: bool,
) -> std::io::Result<Wire<tokio_rustls::client::TlsStream<TcpStream>>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let stream = pki.connector(with_cert).connect(name, tcp).await?;
    Ok(Wire {
        stream,
        buf: BytesMut::new(),
    })
}

fn get_root() -> Request {
    Request::GetData(GetDataRequest {
        path: "/".into(),
        watch: false,
    })
}

async fn start_secure(
    pki: &Pki,
    client_auth: ClientAuth,
    enforce: &[&str],
) -> (TestServer, std::net::SocketAddr) {
    let settings = pki.settings(client_auth);
    let schemes: Vec<String> = enforce.iter().map(|s| s.to_string()).collect();
    let server = start_server_with(move |config| {
        config.secure_port = Some(0);
        config.tls = Some(settings);
        config.enforce_auth_enabled = !schemes.is_empty();
        config.enforce_auth_schemes = schemes;
    })
    .await;
    let secure = server.server.secure_addr.expect("a secure port");
    (server, secure)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_is_an_x509_identity() {
    let pki = Pki::new();
    let (server, secure) = start_secure(&pki, ClientAuth::Need, &[]).await;
    assert_ne!(secure, server.addr, "both ports are open");

    let mut tls = tls_wire(&pki, secure, true).await.unwrap();
    assert_ne!(tls.handshake().await.session_id, 0);
    let (header, body) = tls.call(1, &Request::WhoAmI).await.unwrap();
    assert_eq!(header.err, 0);
    let Response::WhoAmI(WhoAmIResponse { client_info }) =
        Response::decode(OpCode::WhoAmI, &body).unwrap()
    else {
        panic!("not a whoami response");
    };
    assert!(client_info.contains(&ClientInfo {
        auth_scheme: "x509".into(),
        user: "CN=app-a,OU=Registry,O=Canopy,C=US".into(),
    }));
    let (header, _) = tls.call(2, &get_root()).await.unwrap();
    assert_eq!(header.err, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn need_refuses_a_client_without_a_certificate() {
    let pki = Pki::new();
    let (_server, secure) = start_secure(&pki, ClientAuth::Need, &[]).await;
    // With TLS 1.3 the client learns of the refusal on its first read.
    let refused = match tls_wire(&pki, secure, false).await {
        Err(_) => true,
        Ok(mut wire) => {
            let frame = with_length(&new_session_request(2000).to_bytes());
            let _ = wire.stream.write_all(&frame).await;
            wire.frame().await.is_none()
        }
    };
    assert!(refused, "a client without a certificate got a session");
}

#[tokio::test(flavor = "multi_thread")]
async fn enforcement_admits_certificates_and_turns_away_the_rest() {
    let pki = Pki::new();
    let (server, secure) = start_secure(&pki, ClientAuth::Want, &["x509"]).await;

    // With a certificate: served.
    let mut with_cert = tls_wire(&pki, secure, true).await.unwrap();
    with_cert.handshake().await;
    assert_eq!(with_cert.call(1, &get_root()).await.unwrap().0.err, 0);

    // TLS without a certificate ("want"), and plain TCP: the handshake
    // works, the first request gets ZooKeeper's answer and the connection
    // is closed.
    let mut without = tls_wire(&pki, secure, false).await.unwrap();
    without.handshake().await;
    let (header, body) = without.call(7, &get_root()).await.unwrap();
    assert_eq!((header.xid, header.zxid, header.err), (7, 0, -124));
    assert!(body.is_empty());
    assert!(without.frame().await.is_none(), "connection closed");

    let mut plain = Wire {
        stream: TcpStream::connect(server.addr).await.unwrap(),
        buf: BytesMut::new(),
    };
    plain.handshake().await;
    let (header, _) = plain.call(3, &Request::Ping).await.unwrap();
    assert_eq!((header.xid, header.err), (3, -124));
    assert!(plain.frame().await.is_none(), "connection closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_security_settings_stop_the_start() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let start = |tweak: Box<dyn FnOnce(&mut canopy::config::Config)>| {
        let mut config = test_config(dir.path());
        tweak(&mut config);
        canopy::server::Server::start(config)
    };
    let missing = |path: &Path| path.with_file_name("missing.pem");

    let mut no_key = pki.settings(ClientAuth::Need);
    no_key.key_file = missing(&no_key.key_file);
    let mut no_ca = pki.settings(ClientAuth::Want);
    no_ca.ca_file = None;
    for tls in [no_key, no_ca] {
        let result = start(Box::new(move |c| {
            c.secure_port = Some(0);
            c.tls = Some(tls);
        }))
        .await;
        assert!(result.is_err());
    }
    let result = start(Box::new(|c| c.secure_port = Some(0))).await;
    assert!(result.is_err(), "a secure port without certificates");
    let result = start(Box::new(|c| c.enforce_auth_enabled = true)).await;
    assert!(result.is_err(), "enforcement without schemes");
    let result = start(Box::new(|c| {
        c.sasl.jaas_file = Some(PathBuf::from("/nonexistent/jaas.conf"))
    }))
    .await;
    assert!(result.is_err(), "an unreadable JAAS file");
    // And a good one starts.
    let server = start(Box::new(|_| {})).await.unwrap();
    server.stop();
}
