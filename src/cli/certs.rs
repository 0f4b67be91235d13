//! `quotad certs dev`: a development CA and certificates signed by it, for
//! local clusters and tests. Production certificates come from the
//! operator's own CA.
use crate::cli::out::outln;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum CertsCmd {
    /// Write a development CA (`ca.pem`), a node certificate for the given
    /// hosts (`node.pem`, `node-key.pem`; server and client use, for the
    /// ports and between nodes) and a client certificate (`client.pem`,
    /// `client-key.pem`), valid for a year.
    Dev(DevArgs),
}

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Directory to write the files to (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Names and addresses the node certificate is valid for.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1,localhost")]
    hosts: Vec<String>,
    /// The client certificate's name (its identity, e.g. a service name).
    #[arg(long, default_value = "quotad-client")]
    client_name: String,
}

pub fn run(cmd: CertsCmd) -> anyhow::Result<()> {
    match cmd {
        CertsCmd::Dev(a) => dev(&a),
    }
}

fn san(host: &str) -> anyhow::Result<SanType> {
    Ok(match host.parse::<std::net::IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => {
            SanType::DnsName(host.try_into().with_context(|| {
                format!("hosts: {host:?} is neither an IP address nor a DNS name")
            })?)
        }
    })
}

/// From yesterday (clocks differ) for a year.
fn validity(params: &mut CertificateParams) {
    use chrono::Datelike;
    let from = chrono::Utc::now() - chrono::Duration::days(1);
    let (y, m, d) = (from.year(), from.month() as u8, from.day().min(28) as u8);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    params.not_after = rcgen::date_time_ymd(y + 1, m, d);
}

fn dev(a: &DevArgs) -> anyhow::Result<()> {
    let hosts: Vec<&str> = a
        .hosts
        .iter()
        .map(|h| h.trim())
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() {
        bail!("hosts: give at least one name or address");
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "quotad development CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let node_key = KeyPair::generate()?;
    let mut node = CertificateParams::default();
    node.distinguished_name
        .push(DnType::CommonName, "quotad-node");
    node.subject_alt_names = hosts
        .iter()
        .map(|h| san(h))
        .collect::<anyhow::Result<_>>()?;
    node.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    node.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut node);
    let node_cert = node.signed_by(&node_key, &issuer)?;

    let client_key = KeyPair::generate()?;
    let mut client = CertificateParams::default();
    client
        .distinguished_name
        .push(DnType::CommonName, a.client_name.as_str());
    client.subject_alt_names = vec![SanType::DnsName(
        a.client_name
            .as_str()
            .try_into()
            .with_context(|| format!("client-name: {:?} is not a DNS-style name", a.client_name))?,
    )];
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut client);
    let client_cert = client.signed_by(&client_key, &issuer)?;

    write(&a.out, "ca.pem", &ca_cert.pem(), false)?;
    write(&a.out, "node.pem", &node_cert.pem(), false)?;
    write(&a.out, "node-key.pem", &node_key.serialize_pem(), true)?;
    write(&a.out, "client.pem", &client_cert.pem(), false)?;
    write(&a.out, "client-key.pem", &client_key.serialize_pem(), true)?;
    outln!(
        "wrote ca.pem, node.pem, node-key.pem (for {}), client.pem, client-key.pem ({}) to {}",
        hosts.join(", "),
        a.client_name,
        a.out.display()
    )?;
    Ok(())
}

fn write(dir: &Path, name: &str, pem: &str, private: bool) -> anyhow::Result<()> {
    let path = dir.join(name);
    if private {
        quotad_engine::storage::private_file::write(&path, pem.as_bytes())
    } else {
        std::fs::write(&path, pem)
    }
    .with_context(|| format!("writing {}", path.display()))
}
