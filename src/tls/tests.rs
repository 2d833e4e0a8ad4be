use super::client_cert::{ClientCert, ClientCertField};
use super::listener::Source;
use super::upstream::pem_certificates;

fn self_signed(cn: &str, serial: u64) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Example");
    params.serial_number = Some(rcgen::SerialNumber::from(serial));
    params.not_before = rcgen::date_time_ymd(2024, 5, 8);
    params.not_after = rcgen::date_time_ymd(2034, 12, 31);
    (params.self_signed(&key).unwrap(), key)
}

#[test]
fn client_cert_fields_in_aws_formats() {
    let (cert, _) = self_signed("alice", 0x01_0203);
    let c = ClientCert::from_der(cert.der()).unwrap();
    assert!(c.subject_dn.contains("CN=alice"), "{}", c.subject_dn);
    assert!(c.subject_dn.contains("O=Example"), "{}", c.subject_dn);
    assert_eq!(c.issuer_dn, c.subject_dn);
    assert_eq!(c.serial_number, "01:02:03");
    assert_eq!(c.not_before, "May 08 00:00:00 2024 GMT");
    assert_eq!(c.not_after, "Dec 31 00:00:00 2034 GMT");
    assert_eq!(c.pem.trim(), cert.pem().trim());
    assert_eq!(c.field(ClientCertField::SerialNumber), "01:02:03");
    assert!(ClientCert::from_der(b"not DER").is_none());
}

#[test]
fn pem_certificates_refuse_what_is_not_one() {
    let (cert, key) = self_signed("x", 1);
    assert_eq!(pem_certificates(cert.pem().as_bytes()).unwrap().len(), 1);
    assert!(pem_certificates(b"").is_err());
    assert!(pem_certificates(key.serialize_pem().as_bytes()).is_err());
    let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(pem_certificates(broken.as_bytes()).is_err());
}

#[test]
fn listener_source_names_the_file_at_fault() {
    let dir = std::env::temp_dir().join(format!("apigate-tls-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = self_signed("a", 1);
    let (_, other_key) = self_signed("b", 2);
    std::fs::write(dir.join("c.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("k.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("other.pem"), other_key.serialize_pem()).unwrap();
    let source = |k: &str, trust: Option<&str>| Source {
        cert: dir.join("c.pem"),
        key: dir.join(k),
        truststore: trust.map(|t| dir.join(t)),
    };
    assert!(source("k.pem", None).load().is_ok());
    assert!(source("k.pem", Some("c.pem")).load().is_ok());
    let field = |r: Result<_, (&'static str, String)>| r.err().map(|(f, _)| f);
    assert_eq!(field(source("other.pem", None).load()), Some("KeyFile"));
    assert_eq!(field(source("missing.pem", None).load()), Some("KeyFile"));
    assert_eq!(
        field(source("k.pem", Some("k.pem")).load()),
        Some("MutualTlsAuthentication.TruststoreUri")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn self_signed_writes_a_loadable_pair() {
    let dir = std::env::temp_dir().join(format!("apigate-tls-ss-{}", std::process::id()));
    let (cert, key) = super::self_signed::write(&dir).unwrap();
    let source = Source {
        cert,
        key,
        truststore: None,
    };
    assert!(source.load().is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn peer_tls_sets_sni_roots_and_verification() {
    use super::upstream::PeerTls;
    use crate::config::{ConfigErrors, IntegrationTlsConf};
    use pingora_core::upstreams::peer::HttpPeer;
    let mut errors = ConfigErrors::default();
    let roots = super::upstream::load_roots(std::path::Path::new("."), None, &mut errors);
    assert!(
        errors.is_empty() && roots.len() > 100,
        "{} roots",
        roots.len()
    );
    let named = IntegrationTlsConf {
        server_name_to_verify: Some("api.example.com".into()),
        insecure_skip_verification: false,
    };
    let tls = PeerTls::new("i.json", Some(&named), Some(&roots), &mut errors);
    let mut peer = HttpPeer::new(("127.0.0.1", 443), true, "127.0.0.1".into());
    tls.apply(&mut peer);
    assert_eq!(peer.sni, "api.example.com");
    assert!(peer.options.verify_cert && peer.options.verify_hostname);
    assert_eq!(peer.options.ca.as_ref().map(|c| c.len()), Some(roots.len()));
    // Plain peers are left alone.
    let mut plain = HttpPeer::new(("127.0.0.1", 80), false, String::new());
    tls.apply(&mut plain);
    assert!(plain.options.ca.is_none() && plain.sni.is_empty());
    let insecure = IntegrationTlsConf {
        server_name_to_verify: None,
        insecure_skip_verification: true,
    };
    let tls = PeerTls::new("i.json", Some(&insecure), Some(&roots), &mut errors);
    let mut peer = HttpPeer::new(("127.0.0.1", 443), true, "[::1]".into());
    tls.apply(&mut peer);
    assert_eq!(peer.sni, "::1");
    assert!(!peer.options.verify_cert && !peer.options.verify_hostname);
    assert!(errors.is_empty());
}

#[test]
fn self_signed_refuses_a_directory_others_can_enter() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("apigate-tls-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = super::self_signed::write(&dir).unwrap_err();
    assert!(e.contains("not a private directory"), "{e}");
    // Written twice into its own directory: the second start replaces the pair.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (cert, _) = super::self_signed::write(&dir).unwrap();
    let first = std::fs::read(&cert).unwrap();
    super::self_signed::write(&dir).unwrap();
    assert_ne!(first, std::fs::read(&cert).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}
