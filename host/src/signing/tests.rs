use super::*;

const MANIFEST: &str = "name = \"orders\"\nversion = \"1.0.0\"\ncomponent = \"orders.wasm\"\n\
                        [pipeline]\ninputs = [\"orders\"]\noutput = \"orders-out\"\n";

/// A key pair in `dir`, and the host's trust in its public half.
fn keys(dir: &Path, name: &str) -> (PathBuf, TrustedKeys) {
    let (private, public) = generate().expect("a key");
    let private_path = dir.join(format!("{name}.key"));
    let public_path = dir.join(format!("{name}.pub"));
    std::fs::write(&private_path, private).unwrap();
    std::fs::write(&public_path, public).unwrap();
    (
        private_path,
        TrustedKeys::load(&[public_path]).expect("a public key"),
    )
}

fn signed(dir: &Path, key: &Path, manifest: &str, wasm: &[u8]) -> PathBuf {
    let path = dir.join("orders.sig");
    std::fs::write(&path, sign(key, Some(manifest), wasm).unwrap()).unwrap();
    path
}

#[test]
fn a_signed_plugin_verifies_wherever_its_component_file_lies() {
    let dir = tempfile::tempdir().unwrap();
    let (key, trusted) = keys(dir.path(), "platform");
    let signature = signed(dir.path(), &key, MANIFEST, b"component");
    assert_eq!(
        trusted.verify(&signature, Some(MANIFEST), b"component"),
        Ok(())
    );
    // As the plugin store writes it: `component` names another file.
    let materialised = MANIFEST.replace("orders.wasm", "orders-0123456789abcdef.wasm");
    assert_eq!(
        trusted.verify(&signature, Some(&materialised), b"component"),
        Ok(())
    );
}

#[test]
fn a_changed_component_or_setting_or_another_key_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (key, trusted) = keys(dir.path(), "platform");
    let (other_key, _) = keys(dir.path(), "other");
    let signature = signed(dir.path(), &key, MANIFEST, b"component");
    let untrusted = Err(SignatureError::Untrusted(signature.clone()));
    assert_eq!(
        trusted.verify(&signature, Some(MANIFEST), b"component!"),
        untrusted
    );
    let widened = MANIFEST.replace("orders-out", "payments");
    assert_eq!(
        trusted.verify(&signature, Some(&widened), b"component"),
        untrusted
    );
    let by_other = signed(dir.path(), &other_key, MANIFEST, b"component");
    assert_eq!(
        trusted.verify(&by_other, Some(MANIFEST), b"component"),
        Err(SignatureError::Untrusted(by_other.clone()))
    );
}

#[test]
fn a_missing_or_malformed_signature_is_refused_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let (_, trusted) = keys(dir.path(), "platform");
    let missing = dir.path().join("orders.sig");
    let refusal = trusted.verify(&missing, Some(MANIFEST), b"component");
    assert_eq!(refusal, Err(SignatureError::Missing(missing.clone())));
    assert!(refusal.unwrap_err().to_string().starts_with("unsigned: "));
    std::fs::write(&missing, "bm90IGEgc2lnbmF0dXJl\n").unwrap();
    let refusal = trusted
        .verify(&missing, Some(MANIFEST), b"component")
        .unwrap_err();
    assert!(
        refusal.to_string().contains("15 bytes, not 64"),
        "{refusal}"
    );
}

#[test]
fn without_trusted_keys_nothing_needs_a_signature() {
    let trusted = TrustedKeys::default();
    assert!(!trusted.required());
    let nowhere = Path::new("/nowhere/orders.sig");
    assert_eq!(trusted.verify(nowhere, None, b"component"), Ok(()));
}

#[test]
fn a_private_key_is_not_taken_for_a_public_one() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keys(dir.path(), "platform");
    let error = TrustedKeys::load(std::slice::from_ref(&key)).unwrap_err();
    assert!(
        error.to_string().contains("is not an ed25519 public key"),
        "{error}"
    );
}

#[test]
fn signatures_lie_beside_the_manifest_or_the_component() {
    assert_eq!(
        signature_path(Path::new("/p/orders.toml")),
        Path::new("/p/orders.sig")
    );
    assert_eq!(
        signature_path(Path::new("/p/orders.wasm")),
        Path::new("/p/orders.wasm.sig")
    );
}
