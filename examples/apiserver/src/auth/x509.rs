//! `--client-ca-file`: x509 client certificates, as k8s.io/apiserver
//! `pkg/authentication/request/x509` reads them. The chain is verified during the TLS
//! handshake against the CA bundle (rustls' WebPKI client verifier, client-auth usage); the
//! leaf's subject names the user: CommonName → user name, each Organization → a group. A
//! certificate without a CommonName authenticates no one (`CommonNameUserConversion`).

use x509_parser::prelude::{FromDer, X509Certificate};

use super::UserInfo;

/// The user a verified client certificate (`der`, the leaf) names, if any.
pub fn user_from_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    let subject = certificate.subject();
    let name = subject.iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or("").to_owned();
    if name.is_empty() {
        return None;
    }
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_owned).collect();
    Some(UserInfo { name, uid: String::new(), groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(cn: Option<&str>, orgs: &[&str]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        let mut dn = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            dn.push(rcgen::DnType::CommonName, cn);
        }
        for org in orgs {
            dn.push(rcgen::DnType::OrganizationName, *org);
        }
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("certificate").der().to_vec()
    }

    #[test]
    fn common_name_is_the_user_and_organizations_the_groups() {
        let user = user_from_certificate(&certificate(Some("jane"), &["dev"])).expect("a user");
        assert_eq!(user.name, "jane");
        assert_eq!(user.groups, ["dev"]);
        assert_eq!(user_from_certificate(&certificate(Some("solo"), &[])).map(|u| u.groups), Some(vec![]));
        assert_eq!(user_from_certificate(&certificate(None, &["dev"])), None);
        assert_eq!(user_from_certificate(b"not a certificate"), None);
    }
}
