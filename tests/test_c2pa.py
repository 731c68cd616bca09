"""Signed C2PA manifests (interp_gan.provenance_c2pa): with INTERP_GAN_C2PA_KEY / _CERT set,
save_marked_image embeds a manifest signed with the user's key (c2pa.created, IPTC
trainedAlgorithmicMedia, the model sha256) on top of the XMP mark, and never touches the network.

The test makes its own EC P-256 CA and an end-entity certificate issued by it (C2PA refuses a
self-signed signer; it wants digitalSignature + an EKU such as emailProtection). That CA is in no
trust list, so a reader reports the signer as untrusted (``signingCredential.untrusted``) while the
signature and the hashes validate (state ``Valid``); handed the CA as a trust anchor it reads
``Trusted``. Changing the file's bytes after signing reads ``Invalid`` (data hash mismatch)."""
import datetime as dt
import socket

import numpy as np
import pytest

from interp_gan.provenance_c2pa import (ENV_CERT, ENV_KEY, ENV_TRUST, C2paSigningError, c2pa_available,
                                        read_c2pa, sign_image)
from interp_gan.provenance_mark import TRAINED_ALGORITHMIC_MEDIA, read_mark, save_marked_image

needs_c2pa = pytest.mark.skipif(not c2pa_available(),
                                reason="c2pa-python not installed (optional extra: pip install interp-gan[c2pa])")

SHA = "0123456789abcdef" * 4
IMG = np.random.default_rng(1).integers(0, 255, (20, 24, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any socket connection from Python fails the test (c2pa's native code is checked by running
    the file under ``unshare -n`` too; see docs/edits.md)."""
    def refuse(*a, **k):
        raise AssertionError(f"network access attempted: {a!r}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for v in (ENV_KEY, ENV_CERT, ENV_TRUST):
        monkeypatch.delenv(v, raising=False)


@pytest.fixture(scope="module")
def credentials(tmp_path_factory):
    """(key.pem, chain.pem = end-entity + CA, ca.pem) of a throwaway EC P-256 CA."""
    pytest.importorskip("cryptography", reason="the test makes its certificates with `cryptography`")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "interp_gan tests")])

    def usage(ca):
        return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                             encipher_only=False, decipher_only=False)

    def base(subject, issuer, key):
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))

    ca_key, ee_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (base(name("interp_gan test CA"), name("interp_gan test CA"), ca_key)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(True), critical=True).sign(ca_key, hashes.SHA256()))
    ee = (base(name("interp_gan test signer"), ca.subject, ee_key)
          .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
          .add_extension(usage(False), critical=True)
          .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
          .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    d = tmp_path_factory.mktemp("c2pa_creds")
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    (d / "key.pem").write_bytes(ee_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    (d / "chain.pem").write_bytes(pem(ee) + pem(ca))
    (d / "ca.pem").write_bytes(pem(ca))
    return d / "key.pem", d / "chain.pem", d / "ca.pem"


@pytest.fixture
def signing_env(monkeypatch, credentials):
    key, chain, _ = credentials
    monkeypatch.setenv(ENV_KEY, str(key))
    monkeypatch.setenv(ENV_CERT, str(chain))
    return credentials


@needs_c2pa
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_save_marked_image_signs_with_env_credentials(tmp_path, signing_env, suffix):
    p = save_marked_image(IMG, tmp_path / f"a{suffix}", SHA, sha256_of="generator weights")
    m = read_c2pa(p)
    assert m is not None
    assert m["digital_source_type"] == TRAINED_ALGORITHMIC_MEDIA
    assert m["model_sha256"] == SHA and m["model_sha256_of"] == "generator weights"
    assert m["software_agent"].startswith("interp_gan ")
    assert m["signer"].startswith("interp_gan test signer")
    assert m["alg"].lower() == "es256"
    # the signature and every hash validate; only the trust in our throwaway CA is missing
    assert m["validation_state"] == "Valid", m["failures"]
    assert m["failures"] == ["signingCredential.untrusted"]
    mark = read_mark(p)                                  # the XMP mark is still there, under the signature
    assert mark and mark["model_sha256"] == SHA


@needs_c2pa
def test_trust_anchor_makes_it_trusted(tmp_path, signing_env, monkeypatch):
    p = save_marked_image(IMG, tmp_path / "a.png", SHA)
    assert read_c2pa(p, trust_anchors=signing_env[2])["validation_state"] == "Trusted"
    monkeypatch.setenv(ENV_TRUST, str(signing_env[2]))
    m = read_c2pa(p)
    assert m["validation_state"] == "Trusted" and m["failures"] == []


@needs_c2pa
def test_tampered_file_fails_validation(tmp_path, signing_env):
    p = save_marked_image(IMG, tmp_path / "a.png", SHA)
    raw = bytearray(p.read_bytes())
    i = raw.index(b"IDAT")
    raw[i + 8] ^= 0xFF                                     # a byte of the compressed pixels
    p.write_bytes(bytes(raw))
    m = read_c2pa(p)
    assert m["validation_state"] == "Invalid"
    assert "assertion.dataHash.mismatch" in m["failures"]


@needs_c2pa
def test_no_env_no_manifest(tmp_path):
    p = save_marked_image(IMG, tmp_path / "a.png", SHA)
    assert read_c2pa(p) is None
    assert read_mark(p)["model_sha256"] == SHA


@needs_c2pa
def test_sign_image_on_an_existing_file(tmp_path, credentials):
    key, chain, _ = credentials
    p = save_marked_image(IMG, tmp_path / "a.png", SHA)
    sign_image(p, key, chain, model_sha256=SHA)
    assert read_c2pa(p)["validation_state"] == "Valid"


@needs_c2pa
def test_bad_key_is_one_line_and_writes_nothing(tmp_path, signing_env, monkeypatch):
    monkeypatch.setenv(ENV_KEY, str(tmp_path / "missing.pem"))
    with pytest.raises(C2paSigningError) as e:
        save_marked_image(IMG, tmp_path / "a.png", SHA)
    assert "\n" not in str(e.value) and "C2PA key" in str(e.value) and "could not be read" in str(e.value)
    assert not (tmp_path / "a.png").exists()
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    monkeypatch.setenv(ENV_KEY, str(garbage))
    with pytest.raises(C2paSigningError) as e:
        save_marked_image(IMG, tmp_path / "a.png", SHA)
    assert "\n" not in str(e.value) and "could not be used" in str(e.value)
    monkeypatch.delenv(ENV_CERT)
    with pytest.raises(C2paSigningError, match=f"needs both {ENV_KEY} and {ENV_CERT}"):
        save_marked_image(IMG, tmp_path / "a.png", SHA)


@needs_c2pa
def test_inspect_prints_the_manifest(tmp_path, signing_env, capsys):
    from interp_gan.cli import main

    p = save_marked_image(IMG, tmp_path / "a.png", SHA)
    assert main(["inspect", str(p)]) == 0
    out = capsys.readouterr().out
    assert "marked as produced by a trained model" in out
    assert "C2PA manifest: validation state Valid (failures: signingCredential.untrusted)" in out
    assert f"model sha256: {SHA}" in out and TRAINED_ALGORITHMIC_MEDIA in out


def test_missing_package_is_one_line(tmp_path, monkeypatch):
    """Runs with or without c2pa-python: an import that fails says which extra to install."""
    import sys

    monkeypatch.setitem(sys.modules, "c2pa", None)          # `import c2pa` raises ImportError
    assert not c2pa_available()
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    monkeypatch.setenv(ENV_KEY, str(key))
    monkeypatch.setenv(ENV_CERT, str(cert))
    with pytest.raises(C2paSigningError, match=r"pip install interp-gan\[c2pa\]") as e:
        save_marked_image(IMG, tmp_path / "a.png", SHA)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "a.png").exists()
    monkeypatch.delenv(ENV_KEY)
    monkeypatch.delenv(ENV_CERT)
    p = save_marked_image(IMG, tmp_path / "a.png", SHA)     # no env: the XMP mark alone, no c2pa needed
    assert read_mark(p)["model_sha256"] == SHA
