//! TLS to the fleet's database, with libpq's settings in `--db`: `sslmode` (`disable`, `prefer`, the
//! default, `require`, `verify-ca`, `verify-full`) and `sslrootcert` (a PEM file of CA certificates, or
//! `system` for the public CAs). tokio-postgres reads only `disable|prefer|require` and no root certificate,
//! so both are taken out of the URL here, and the connector checks the server's certificate as libpq does:
//! not at all for `prefer` and `require` (unless `require` is given a root certificate, which makes it
//! `verify-ca`, as in libpq), its chain to the CA for `verify-ca`, the chain and the host name for
//! `verify-full`. rustls with ring, which reqwest already brings, does the TLS.

use crate::exit_codes::Usage;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// How the connection is secured, libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> anyhow::Result<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                anyhow::bail!("--db: sslmode=allow is not supported: use prefer (TLS when the server offers it)")
            }
            other => {
                anyhow::bail!("--db: sslmode must be disable, prefer, require, verify-ca or verify-full, got `{other}`")
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: it negotiates, the connector verifies.
    fn for_tokio_postgres(self) -> &'static str {
        match self {
            SslMode::VerifyCa | SslMode::VerifyFull => "require",
            other => other.as_str(),
        }
    }
}

/// Where the CA certificates come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// A PEM file of one or more CA certificates.
    File(PathBuf),
    /// The public CAs (Mozilla's list, built in): `sslrootcert=system`.
    System,
}

/// The TLS settings of a `--db` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub roots: Option<Roots>,
}

impl TlsSettings {
    /// Whether the server's certificate chain is checked against `roots`.
    fn verifies_chain(&self) -> bool {
        matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull)
            || (self.mode == SslMode::Require && self.roots.is_some())
    }

    /// What the settings ask for, for messages: `sslmode=verify-full, CA from /etc/ca.pem`.
    pub fn describe(&self) -> String {
        match (&self.roots, self.verifies_chain()) {
            (Some(Roots::File(p)), true) => format!("sslmode={}, CA from {}", self.mode.as_str(), p.display()),
            (Some(Roots::System), true) => format!("sslmode={}, the public CAs", self.mode.as_str()),
            _ => format!("sslmode={}", self.mode.as_str()),
        }
    }
}

/// Splits a `--db` URL (`postgres://...?sslmode=verify-full&sslrootcert=/ca.pem`, or libpq's
/// `host=... sslmode=...` form) into what tokio-postgres parses (`sslmode` one of its three, no
/// `sslrootcert`) and the TLS settings the connector applies.
pub fn split(url: &str) -> anyhow::Result<(String, TlsSettings)> {
    split_at_home(url, std::env::var_os("HOME").as_deref().map(Path::new))
}

/// [`split`], with `home` the folder of libpq's default CA file (`~/.postgresql/root.crt`).
fn split_at_home(url: &str, home: Option<&Path>) -> anyhow::Result<(String, TlsSettings)> {
    let (mut mode, mut root) = (None, None);
    let mut take = |key: &str, value: &str| -> anyhow::Result<Option<String>> {
        match key {
            "sslmode" => {
                let m = SslMode::parse(value)?;
                mode = Some(m);
                Ok(Some(m.for_tokio_postgres().to_string()))
            }
            "sslrootcert" => {
                root = Some(value.to_string());
                Ok(None)
            }
            _ => Ok(Some(value.to_string())),
        }
    };
    let rest = if let Some((base, query)) = url.split_once('?').filter(|_| is_url(url)) {
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(raw);
            match take(key, &value)? {
                Some(v) if v == value => kept.push(pair.to_string()),
                Some(v) => kept.push(format!("{key}={v}")),
                None => {}
            }
        }
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else if is_url(url) {
        url.to_string()
    } else {
        let mut kept = Vec::new();
        for (key, value, raw) in key_values(url)? {
            match take(&key, &value)? {
                Some(v) if v == value => kept.push(raw.to_string()),
                Some(v) => kept.push(format!("{key}={v}")),
                None => {}
            }
        }
        kept.join(" ")
    };
    let mode = mode.unwrap_or(SslMode::Prefer);
    let roots = match root.as_deref() {
        Some("system") => Some(Roots::System),
        Some("") => anyhow::bail!("--db: sslrootcert is empty: give the CA's PEM file, or `system` for the public CAs"),
        Some(path) => Some(Roots::File(PathBuf::from(path))),
        // libpq's default place for the CA of verify-ca and verify-full.
        None if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
            let default = home.map(|h| h.join(".postgresql/root.crt"));
            match default.filter(|p| p.is_file()) {
                Some(path) => Some(Roots::File(path)),
                None => anyhow::bail!(
                    "--db: sslmode={} checks the server's certificate against a CA: add sslrootcert=/path/ca.pem \
                     (or sslrootcert=system for the public CAs)",
                    mode.as_str()
                ),
            }
        }
        None => None,
    };
    Ok((rest, TlsSettings { mode, roots }))
}

fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `%XX` decoded (as tokio-postgres decodes URL values); anything else as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's `key=value key='quoted value'` form: (key, value, the pair's own text).
fn key_values(s: &str) -> anyhow::Result<Vec<(String, String, &str)>> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else { break };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        anyhow::ensure!(chars.next().is_some_and(|(_, c)| c == '='), "--db: `{key}` has no `=value`");
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
        let mut end = s.len();
        loop {
            match chars.next() {
                None => {
                    anyhow::ensure!(!quoted, "--db: the value of `{key}` has no closing quote");
                    break;
                }
                Some((_, '\\')) => value.extend(chars.next().map(|(_, c)| c)),
                Some((i, '\'')) if quoted => {
                    end = i + 1;
                    break;
                }
                Some((i, c)) if c.is_whitespace() && !quoted => {
                    end = i;
                    break;
                }
                Some((_, c)) => value.push(c),
            }
        }
        out.push((key, value, &s[start..end]));
    }
    Ok(out)
}

/// The connector tokio-postgres calls for each connection: TLS through rustls, checked as the settings say.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<rustls::ClientConfig>,
    /// For the messages of a refused certificate.
    pub settings: TlsSettings,
}

impl MakeRustls {
    /// Reads the CA certificates the settings name (a usage error when they cannot be read).
    pub fn new(settings: TlsSettings) -> anyhow::Result<MakeRustls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match (&settings.roots, settings.verifies_chain()) {
            (Some(roots), true) => {
                let store = Arc::new(root_store(roots).map_err(Usage)?);
                let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(store, provider.clone())
                    .build()
                    .map_err(|e| Usage(anyhow::anyhow!("--db: the CA certificates cannot be used: {e}")))?;
                Arc::new(Checked { webpki, host_name: settings.mode == SslMode::VerifyFull })
            }
            _ => Arc::new(Unchecked { provider: provider.clone() }),
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow::anyhow!("TLS set-up: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustls { config: Arc::new(config), settings })
    }
}

fn root_store(roots: &Roots) -> anyhow::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::System => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Roots::File(path) => {
            use rustls::pki_types::pem::PemObject;
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(path).and_then(|certs| certs.collect::<Result<_, _>>()).map_err(|e| {
                    anyhow::anyhow!("--db: sslrootcert {}: cannot read its certificates: {e}", path.display())
                })?;
            anyhow::ensure!(!certs.is_empty(), "--db: sslrootcert {} holds no PEM certificate", path.display());
            let (added, ignored) = store.add_parsable_certificates(certs);
            anyhow::ensure!(
                added > 0,
                "--db: sslrootcert {}: none of its {ignored} certificates can be a CA",
                path.display()
            );
        }
    }
    Ok(store)
}

/// The chain checked against the CA; the host name too when `host_name` (verify-full), not for verify-ca.
#[derive(Debug)]
struct Checked {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    host_name: bool,
}

impl ServerCertVerifier for Checked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.host_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a CA, as in libpq: encrypted, the certificate not checked (the handshake's
/// signatures still are).
#[derive(Debug)]
struct Unchecked {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> MakeTlsConnect<S> for MakeRustls {
    type Stream = Tls<S>;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, Self::Error> {
        // An IPv6 address comes in brackets from a URL.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())?;
        Ok(RustlsConnect { config: self.config.clone(), name })
    }
}

/// One connection's handshake.
pub struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> TlsConnect<S> for RustlsConnect {
    type Stream = Tls<S>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Tls<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move { connector.connect(self.name, stream).await.map(Tls) })
    }
}

/// A TLS connection to the database. No channel binding: SCRAM authenticates without it, as libpq does
/// with `channel_binding=prefer` when the server's certificate hash is not offered.
pub struct Tls<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for Tls<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Tls<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Tls<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Why the server's certificate was refused, in words, when that is what failed: the user must fix the CA or
/// the host name (exit 2), unlike a server that is down.
pub fn refusal(error: &anyhow::Error, settings: &TlsSettings) -> Option<String> {
    // tokio-rustls hands rustls' error inside an io::Error, whose `source` skips it: look inside too.
    let cert = error.chain().find_map(|e| {
        let inner = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).map(|i| i as &dyn std::error::Error);
        [Some(e), inner].into_iter().flatten().find_map(|e| match e.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidCertificate(c)) => Some(c.clone()),
            _ => None,
        })
    })?;
    let why = match cert {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => {
            "is not signed by a CA it trusts".to_string()
        }
        CertificateError::NotValidForName => "is not for the host name connected to".to_string(),
        CertificateError::NotValidForNameContext { expected, presented } => format!(
            "is for {}, not for the host name connected to ({})",
            if presented.is_empty() {
                "no name".to_string()
            } else {
                presented.iter().map(|n| plain_name(n)).collect::<Vec<_>>().join(", ")
            },
            expected.to_str()
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "has expired".to_string(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => "is not valid yet".to_string(),
        other => format!("was refused: {other}"),
    };
    Some(format!("the database server's TLS certificate {why} ({})", settings.describe()))
}

/// A certificate name as webpki shows it (`DnsName("db.example.org")`, `IpAddress(127.0.0.1)`), plain.
fn plain_name(shown: &str) -> &str {
    let inner = ["DnsName(", "IpAddress(", "UniformResourceIdentifier("]
        .iter()
        .find_map(|p| shown.strip_prefix(p).and_then(|r| r.strip_suffix(')')));
    inner.map_or(shown, |n| n.trim_matches('"'))
}

#[cfg(test)]
mod tests;
