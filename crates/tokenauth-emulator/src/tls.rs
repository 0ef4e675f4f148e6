//! A generated CA and leaf certificate for the TLS listener.

use std::io;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::host::Host;

pub(crate) struct TlsMaterial {
    pub(crate) ca_pem: String,
    pub(crate) server_config: Arc<ServerConfig>,
}

fn err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("tokenauth-emulator: {what}: {e}"))
}

/// A fresh CA, and a leaf for the four host names, `localhost` and `127.0.0.1`.
pub(crate) fn generate() -> io::Result<TlsMaterial> {
    let mut names: Vec<String> = Host::ALL.iter().map(|h| h.hostname().to_owned()).collect();
    names.push("localhost".to_owned());
    generate_for(names)
}

/// A fresh CA, and a leaf for `names` and `127.0.0.1`.
pub(crate) fn generate_for(mut names: Vec<String>) -> io::Result<TlsMaterial> {
    let rc = |e: rcgen::Error| err("generating the TLS certificate", e);

    let ca_key = KeyPair::generate().map_err(rc)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "tokenauth-emulator test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(rc)?;
    let issuer = Issuer::new(ca, ca_key);

    names.push("127.0.0.1".to_owned());
    let leaf_key = KeyPair::generate().map_err(rc)?;
    let mut leaf = CertificateParams::new(names).map_err(rc)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "tokenauth-emulator");
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(rc)?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| err("configuring TLS", e))?
        .with_no_client_auth()
        .with_single_cert(vec![leaf_cert.der().clone(), ca_cert.der().clone()], key)
        .map_err(|e| err("configuring TLS", e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        ca_pem: ca_cert.pem(),
        server_config: Arc::new(config),
    })
}
