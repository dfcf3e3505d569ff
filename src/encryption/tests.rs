use super::*;
use crate::transformer::Transformer;
use bytes::Bytes;

const K16: &str = "MTIzNDU2Nzg5MDEyMzQ1Ng=="; // 16 bytes
const K32: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI="; // 32 bytes
const K32B: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY="; // 32 bytes
const AAD: &[u8] = b"/registry/secrets/default/s";

fn config(resources: &str, providers: &str) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: {resources}\n    providers:\n{providers}"
    )
}

fn build(text: &str) -> Result<ResourceTransformers> {
    EncryptionConfiguration::parse(text)?.transformers()
}

fn invalid(err: &Error) -> (String, String, String) {
    match err {
        Error::Invalid { field, value, message } => (field.clone(), value.clone(), message.clone()),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn first_provider_writes_with_its_prefix_and_all_read() {
    let text = config(
        "[secrets]",
        &format!(
            "      - aesgcm: {{keys: [{{name: new, secret: {K32}}}, {{name: old, secret: {K16}}}]}}\n      - secretbox: {{keys: [{{name: sb, secret: {K32B}}}]}}\n      - identity: {{}}\n"
        ),
    );
    let transformers = build(&text).expect("config");
    let t = transformers.transformer_for_resource(&GroupResource::core("secrets"));
    let stored = t.transform_to_storage(Bytes::from_static(b"plain"), AAD).expect("write").to_vec();
    assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:new:"), "{:?}", String::from_utf8_lossy(&stored));
    assert_eq!(t.transform_from_storage(&stored, AAD).expect("read"), (b"plain".to_vec().into(), false));
    // Data written by a later key/provider reads as stale.
    let old = AesGcmTransformer::new(b"1234567890123456").expect("old");
    let mut by_old = b"k8s:enc:aesgcm:v1:old:".to_vec();
    by_old.extend(old.transform_to_storage(Bytes::from_static(b"older"), AAD).expect("enc").to_vec());
    assert_eq!(t.transform_from_storage(&by_old, AAD).expect("read old"), (b"older".to_vec().into(), true));
    // Plaintext is read by identity, stale.
    assert_eq!(t.transform_from_storage(b"{}", AAD).expect("plain"), (b"{}".to_vec().into(), true));
}

#[test]
fn identity_first_migrates_away_from_encryption() {
    let text = config(
        "[secrets]",
        &format!("      - identity: {{}}\n      - aescbc: {{keys: [{{name: k, secret: {K32}}}]}}\n"),
    );
    let t = build(&text).expect("config").transformer_for_resource(&GroupResource::core("secrets"));
    assert_eq!(t.transform_to_storage(Bytes::from_static(b"x"), AAD).expect("write").to_vec(), b"x");
    let cbc = AesCbcTransformer::new(b"12345678901234567890123456789012").expect("cbc");
    let mut stored = b"k8s:enc:aescbc:v1:k:".to_vec();
    stored.extend(cbc.transform_to_storage(Bytes::from_static(b"secret"), AAD).expect("enc").to_vec());
    assert_eq!(t.transform_from_storage(&stored, AAD).expect("read"), (b"secret".to_vec().into(), true));
}

#[test]
fn data_under_a_removed_key_names_the_key() {
    let text = config("[secrets]", &format!("      - aesgcm: {{keys: [{{name: key2, secret: {K32}}}]}}\n"));
    let t = build(&text).expect("config").transformer_for_resource(&GroupResource::core("secrets"));
    let err =
        t.transform_from_storage(b"k8s:enc:aesgcm:v1:key1:0123456789012345678901234567890", AAD).expect_err("gone");
    let message = err.to_string();
    assert!(matches!(err, Error::Internal { .. }));
    assert!(message.contains("k8s:enc:aesgcm:v1:key1:"), "{message}");
    assert!(message.contains("/registry/secrets/default/s"), "{message}");
    // Plaintext without an identity provider is refused too.
    let err = t.transform_from_storage(b"{\"a\":1}", AAD).expect_err("plaintext");
    assert!(err.to_string().contains("no identity provider"), "{err}");
    // A matching prefix whose payload is corrupt is an error, not a panic.
    let err = t.transform_from_storage(b"k8s:enc:aesgcm:v1:key2:xx", AAD).expect_err("corrupt");
    assert!(err.to_string().contains("shorter than the required size"), "{err}");
}

#[test]
fn resource_lookup_is_exact_then_group_then_everything() {
    let text = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [deployments.apps]\n    providers: [{{secretbox: {{keys: [{{name: a, secret: {K32}}}]}}}}]\n  - resources: ['*.apps']\n    providers: [{{aescbc: {{keys: [{{name: b, secret: {K32}}}]}}}}]\n  - resources: ['*.*']\n    providers: [{{aesgcm: {{keys: [{{name: c, secret: {K32}}}]}}}}]\n"
    );
    let transformers = build(&text).expect("config");
    let write = |gr: GroupResource| {
        let out = transformers
            .transformer_for_resource(&gr)
            .transform_to_storage(Bytes::from_static(b"v"), AAD)
            .expect("write")
            .to_vec();
        String::from_utf8_lossy(&out[..out.len().min(40)]).into_owned()
    };
    assert!(write(GroupResource::new("apps", "deployments")).starts_with("k8s:enc:secretbox:v1:a:"));
    assert!(write(GroupResource::new("apps", "daemonsets")).starts_with("k8s:enc:aescbc:v1:b:"));
    assert!(write(GroupResource::core("configmaps")).starts_with("k8s:enc:aesgcm:v1:c:"));
    // Without a matching rule: identity.
    let none = build(&config("[secrets]", "      - identity: {}\n")).expect("config");
    assert_eq!(
        none.transformer_for_resource(&GroupResource::core("configmaps"))
            .transform_to_storage(Bytes::from_static(b"v"), AAD)
            .expect("w")
            .to_vec(),
        b"v"
    );
}

#[test]
fn malformed_files_give_clear_errors() {
    let gcm = format!("      - aesgcm: {{keys: [{{name: k, secret: {K32}}}]}}\n");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "apiVersion: v1\nkind: EncryptionConfiguration\nresources: []\n".into(),
            "apiVersion",
            "must be apiserver.config.k8s.io/v1",
        ),
        ("apiVersion: apiserver.config.k8s.io/v1\nkind: Foo\n".into(), "kind", "must be EncryptionConfiguration"),
        (
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n".into(),
            "resources",
            "at least one resources is required",
        ),
        (config("[]", &gcm), "resources[0].resources", "at least one resources[0].resources is required"),
        (
            config("[secrets]", "      []\n"),
            "resources[0].providers",
            "at least one resources[0].providers is required",
        ),
        (config("[Secrets]", &gcm), "resources[0].resources[0]", "resource name should not contain capital letters"),
        (config("['*']", &gcm), "resources[0].resources[0]", "use '*.' to encrypt all the resources"),
        (config("[events.events.k8s.io]", &gcm), "resources[0].resources[0]", "stored using the 'events' API group"),
        (config("[ingresses.extensions]", &gcm), "resources[0].resources[0]", "'extensions' group has been removed"),
        (
            config("['*.', secrets]", &gcm),
            "resources[0].resources[1]",
            "resource \"secrets\" is masked by earlier rule \"*.\"",
        ),
        (config("['*.*', deployments.apps]", &gcm), "resources[0].resources[1]", "masked by earlier rule \"*.*\""),
        (
            config("[secrets, secrets]", &gcm),
            "resources[0].resources[1]",
            "the same resource cannot be specified multiple times",
        ),
        (
            config("[secrets]", "      - {}\n"),
            "resources[0].providers[0]",
            "provider does not contain any of the expected providers",
        ),
        (
            config("[secrets]", "      - {identity: {}, aesgcm: {keys: []}}\n"),
            "resources[0].providers[0]",
            "more than one provider",
        ),
        (
            config("[secrets]", "      - aesgcm: {keys: []}\n"),
            "resources[0].providers[0].aesgcm.keys",
            "at least one keys is required",
        ),
        (
            config("[secrets]", &format!("      - aesgcm: {{keys: [{{secret: {K32}}}]}}\n")),
            "resources[0].providers[0].aesgcm.keys[0].name",
            "name is a mandatory field for a key",
        ),
        (
            config("[secrets]", "      - aesgcm: {keys: [{name: k}]}\n"),
            "resources[0].providers[0].aesgcm.keys[0].secret",
            "secret is a mandatory field for a key",
        ),
        (
            config("[secrets]", "      - aesgcm: {keys: [{name: k, secret: 'P@ssword'}]}\n"),
            "resources[0].providers[0].aesgcm.keys[0].secret",
            "secrets must be base64 encoded",
        ),
        (
            config("[secrets]", "      - aesgcm: {keys: [{name: k, secret: cGFzc3dvcmQK}]}\n"),
            "resources[0].providers[0].aesgcm.keys[0].secret",
            "secret is not of the expected length, got 9, expected one of [16 24 32]",
        ),
        (
            config("[secrets]", &format!("      - secretbox: {{keys: [{{name: k, secret: {K16}}}]}}\n")),
            "resources[0].providers[0].secretbox.keys[0].secret",
            "got 16, expected one of [32]",
        ),
        (
            config("[secrets]", "      - kms: {name: x, endpoint: 'unix:///kms.sock'}\n"),
            "resources[0].providers[0].kms",
            "KMS providers are not supported",
        ),
    ];
    for (text, field, message) in cases {
        let err = build(&text).expect_err(field);
        let (got_field, _, got_message) = invalid(&err);
        assert_eq!(got_field, field, "{err}");
        assert!(got_message.contains(message), "{field}: {got_message}");
        assert!(!err.to_string().contains(K32), "secret leaked: {err}");
    }
    // Parse errors and unknown fields.
    let err = EncryptionConfiguration::parse("resources: [").expect_err("syntax");
    assert!(err.to_string().contains("cannot parse"), "{err}");
    let err = EncryptionConfiguration::parse(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresource: []\n",
    )
    .expect_err("typo");
    assert!(err.to_string().contains("resource"), "{err}");
    let err = EncryptionConfiguration::parse("").expect_err("empty");
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn json_files_load_too_and_paths_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("enc.json");
    std::fs::write(
        &path,
        format!(r#"{{"apiVersion":"apiserver.config.k8s.io/v1","kind":"EncryptionConfiguration","resources":[{{"resources":["secrets"],"providers":[{{"aesgcm":{{"keys":[{{"name":"k","secret":"{K32}"}}]}}}}]}}]}}"#),
    )
    .expect("write");
    let t = ResourceTransformers::load(&path).expect("load json");
    let out = t
        .transformer_for_resource(&GroupResource::core("secrets"))
        .transform_to_storage(Bytes::from_static(b"v"), AAD)
        .expect("w")
        .to_vec();
    assert!(out.starts_with(b"k8s:enc:aesgcm:v1:k:"));
    let missing = dir.path().join("missing.yaml");
    let err = ResourceTransformers::load(&missing).expect_err("missing");
    let (field, value, _) = invalid(&err);
    assert_eq!((field.as_str(), value), ("encryption_provider_config", missing.display().to_string()));
}
