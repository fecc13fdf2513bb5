"""Signed bundles: keygen, sign, verify_signature, load(public_key=...), real keys, real bundles.

Interoperability with the reference `model_signing` command is in tests/cli/test_signing_cli.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import modelkeep
from modelkeep.errors import (
    BundleLayoutError,
    BundleNotFoundError,
    IntegrityError,
    ManifestError,
    MissingDependencyError,
    SignatureError,
    SigningKeyError,
    SigningKeyExistsError,
)
from modelkeep.signing import key_id, keygen, sign, verify_signature

ARTIFACT = "artifacts/pipeline.skops"
MISMATCH_ADVICE = (
    "The bundle changed after it was signed: do not use it, get a fresh copy from its "
    "publisher (or, if you changed it yourself, sign it again)."
)
WRONG_KEY_ADVICE = "Check that the public key is the publisher's; if it is, do not use this bundle."
KEY_ADVICE = (
    "Use an unencrypted EC P-256, P-384 or P-521 key in PEM format, as `modelkeep keygen` "
    "writes: the private key to sign, the .pub file to verify."
)


@pytest.fixture
def owner(tmp_path: Path) -> tuple[Path, Path]:
    """The publisher's key pair: (private key, public key)."""
    (tmp_path / "keys").mkdir()
    return keygen(tmp_path / "keys" / "owner")


@pytest.fixture
def signed(saved: Path, owner: tuple[Path, Path]) -> Path:
    """A saved random-forest bundle, signed with the owner's key."""
    sign(saved, owner[0])
    return saved


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def changed(name: str, signed_digest: str, found: str) -> str:
    return (
        f"the files differ from the signed ones: changed: {name!r} (sha256 signed "
        f"{signed_digest[:12]}..., found {found[:12]}...)"
    )


def message(bundle: Path, reason: str, advice: str = MISMATCH_ADVICE) -> str:
    return re.escape(f"Signature of bundle {str(bundle)!r}: {reason}. {advice}")


def layout_message(bundle: Path, entry: str) -> str:
    return re.escape(
        f"Bundle {str(bundle)!r}: expected only regular files and directories, got {entry!r}, "
        "a symbolic link. A bundle never holds links or special files (a link could point "
        "outside it); replace it with a copy of what it stands for or remove it, or get an "
        "intact copy of the bundle."
    )


def write_key(path: Path, key: Any, password: bytes | None = None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


# ------------------------------------------------------------------------------- keygen


def test_keygen_writes_a_p256_pair_private_key_0600(owner: tuple[Path, Path]) -> None:
    private, public = owner
    assert public == private.with_name("owner.pub")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert public.read_bytes() == pem
    assert key_id(public) == sha(pem)


def test_keygen_never_overwrites(tmp_path: Path) -> None:
    keygen(tmp_path / "k")
    before = (tmp_path / "k").read_bytes()
    expected = (
        f"Cannot write key file {str(tmp_path / 'k')!r}: it already exists. keygen never "
        "overwrites a key; choose another path, or move the old key away first."
    )
    with pytest.raises(SigningKeyExistsError, match=re.escape(expected)):
        keygen(tmp_path / "k")
    assert (tmp_path / "k").read_bytes() == before
    # An existing public key alone is enough to refuse, and no private key is left behind.
    (tmp_path / "other.pub").write_text("someone's key")
    with pytest.raises(SigningKeyExistsError, match=re.escape(repr(str(tmp_path / "other.pub")))):
        keygen(tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_keygen_into_a_missing_directory(tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "k"
    expected = re.escape(
        f"Key file {str(target)!r}: cannot be written (No such file or directory). {KEY_ADVICE}"
    )
    with pytest.raises(SigningKeyError, match=expected):
        keygen(target)


def test_sign_needs_a_bundle(tmp_path: Path, owner: tuple[Path, Path]) -> None:
    expected = re.escape(f"No modelkeep bundle at {str(tmp_path / 'nowhere')!r}: no such directory")
    with pytest.raises(BundleNotFoundError, match=expected):
        sign(tmp_path / "nowhere", owner[0])


# ------------------------------------------------------------------------- sign / verify


def test_sign_covers_manifest_and_artifact_and_verifies(
    saved: Path, owner: tuple[Path, Path]
) -> None:
    written = sign(saved, owner[0])
    assert written.signature == saved / "model.sig"
    assert written.files == (ARTIFACT, "modelkeep.json")
    assert written.key_id == key_id(owner[1])
    checked = verify_signature(saved, owner[1])
    assert checked == written
    # The statement inside model.sig lists each file with its SHA-256.
    envelope = json.loads((saved / "model.sig").read_text())["dsseEnvelope"]
    import base64

    statement = json.loads(base64.b64decode(envelope["payload"]))
    resources = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    assert resources == {
        "modelkeep.json": sha((saved / "modelkeep.json").read_bytes()),
        ARTIFACT: sha((saved / ARTIFACT).read_bytes()),
    }
    assert sorted(os.listdir(saved)) == ["artifacts", "model.sig", "modelkeep.json"]


def test_load_and_verify_with_the_key(signed: Path, owner: tuple[Path, Path]) -> None:
    model = modelkeep.load(signed, public_key=owner[1])
    assert model.manifest.name == "churn"
    checks = modelkeep.verify(signed, public_key=owner[1])
    assert [c.name for c in checks] == [
        "manifest",
        "signature",
        "integrity",
        "environment",
        "artifact",
        "manifest claims",
        "golden samples",
    ]
    assert all(c.passed for c in checks), checks
    assert checks[1].detail == (
        f"model.sig verified with {str(owner[1])!r} (key id {key_id(owner[1])[:16]}): "
        "2 file(s) signed, none added"
    )


def test_missing_signature(saved: Path, owner: tuple[Path, Path]) -> None:
    expected = message(
        saved,
        "expected model.sig in the bundle, found none",
        "Sign it with `modelkeep sign`, or get a signed copy from its publisher.",
    )
    with pytest.raises(SignatureError, match=expected) as info:
        verify_signature(saved, owner[1])
    assert (info.value.kind, info.value.bundle) == ("missing", str(saved))
    with pytest.raises(SignatureError, match=expected):
        modelkeep.load(saved, public_key=owner[1])
    # Without a key, an unsigned bundle loads as before.
    assert modelkeep.load(saved).manifest.name == "churn"


def test_wrong_key(signed: Path, owner: tuple[Path, Path], tmp_path: Path) -> None:
    _, stranger = keygen(tmp_path / "keys" / "stranger")
    reason = (
        f"expected a signature by the key in {str(stranger)!r} (key id "
        f"{key_id(stranger)[:16]}), got one by another key (key id {key_id(owner[1])[:16]})"
    )
    with pytest.raises(SignatureError, match=message(signed, reason, WRONG_KEY_ADVICE)) as info:
        modelkeep.load(signed, public_key=stranger)
    assert info.value.kind == "wrong_key"
    checks = modelkeep.verify(signed, public_key=stranger)
    assert [(c.name, c.passed) for c in checks] == [("manifest", True), ("signature", False)]


def test_wrong_key_without_the_key_hint(
    signed: Path, owner: tuple[Path, Path], tmp_path: Path
) -> None:
    # The key hint is not signed: without it, the ECDSA check itself must refuse.
    document = json.loads((signed / "model.sig").read_text())
    del document["verificationMaterial"]["publicKey"]["hint"]
    (signed / "model.sig").write_text(json.dumps(document))
    _, stranger = keygen(tmp_path / "keys" / "stranger")
    reason = (
        f"expected a signature made with the private key of {str(stranger)!r}, got one that "
        "does not verify with it (another key made it, or model.sig was altered)"
    )
    with pytest.raises(SignatureError, match=message(signed, reason, WRONG_KEY_ADVICE)):
        verify_signature(signed, stranger)


def _positions(size: int, count: int) -> list[int]:
    """``count`` positions spread evenly from the first byte to the last."""
    return sorted({round(i * (size - 1) / (count - 1)) for i in range(count)})


@pytest.mark.parametrize("name", ["modelkeep.json", ARTIFACT])
def test_each_flipped_byte_fails_verification(
    signed: Path, owner: tuple[Path, Path], name: str
) -> None:
    target = signed / name
    original = target.read_bytes()
    positions = _positions(len(original), 10)
    assert len(positions) == 10
    for position in positions:
        flipped = bytearray(original)
        flipped[position] ^= 0x01
        target.write_bytes(bytes(flipped))
        expected = message(signed, changed(name, sha(original), sha(bytes(flipped))))
        with pytest.raises(SignatureError, match=expected) as info:
            verify_signature(signed, owner[1])
        assert info.value.kind == "mismatch", position
        target.write_bytes(original)
    verify_signature(signed, owner[1])  # restored: passes again


def test_flipped_bytes_in_the_signature_itself_fail(signed: Path, owner: tuple[Path, Path]) -> None:
    sig = signed / "model.sig"
    original = sig.read_bytes()
    document = json.loads(original)
    # Inside the signed payload and inside the ECDSA signature value.
    regions = [document["dsseEnvelope"]["payload"], document["dsseEnvelope"]["signatures"][0]]
    starts = [original.index(regions[0].encode()), original.index(regions[1]["sig"].encode())]
    lengths = [len(regions[0]), len(regions[1]["sig"])]
    for start, length in zip(starts, lengths, strict=True):
        for offset in _positions(length - 4, 5):  # spare the base64 padding at the end
            flipped = bytearray(original)
            flipped[start + offset] ^= 0x01
            sig.write_bytes(bytes(flipped))
            with pytest.raises(SignatureError) as info:
                verify_signature(signed, owner[1])
            assert info.value.kind in ("wrong_key", "malformed"), (offset, str(info.value))
    sig.write_bytes(original)
    verify_signature(signed, owner[1])


@pytest.mark.parametrize(
    "added", ["notes.txt", "artifacts/pipeline.pkl", ".gitignore", ".git/config"], ids=str
)
def test_an_added_file_fails(signed: Path, owner: tuple[Path, Path], added: str) -> None:
    (signed / added).parent.mkdir(exist_ok=True)
    (signed / added).write_bytes(b"added later")
    reason = f"the files differ from the signed ones: not signed (added after signing?): {added!r}"
    with pytest.raises(SignatureError, match=message(signed, reason)):
        modelkeep.load(signed, public_key=owner[1])


def test_a_removed_file_fails(signed: Path, owner: tuple[Path, Path]) -> None:
    (signed / ARTIFACT).rename(signed / "artifacts" / "renamed.skops")
    reason = (
        "the files differ from the signed ones: not signed (added after signing?): "
        f"'artifacts/renamed.skops'; signed but missing: {ARTIFACT!r}"
    )
    with pytest.raises(SignatureError, match=message(signed, reason)):
        verify_signature(signed, owner[1])


def test_a_symlink_fails(signed: Path, owner: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("x")
    (signed / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BundleLayoutError, match=layout_message(signed, "link")):
        verify_signature(signed, owner[1])


def test_a_symlinked_artifacts_folder_fails_even_with_the_same_files(
    signed: Path, owner: tuple[Path, Path], tmp_path: Path
) -> None:
    # The same bytes outside the bundle: by hashes alone the signature would still hold.
    (signed / "artifacts").rename(tmp_path / "outside")
    (signed / "artifacts").symlink_to(tmp_path / "outside")
    with pytest.raises(BundleLayoutError, match=layout_message(signed, "artifacts")):
        verify_signature(signed, owner[1])
    with pytest.raises(BundleLayoutError, match=layout_message(signed, "artifacts")):
        modelkeep.load(signed, public_key=owner[1])


def test_a_signature_leaving_out_the_artifact_is_refused(
    saved: Path, owner: tuple[Path, Path]
) -> None:
    # Signed by the reference library itself, told to skip the artifact: model_signing
    # accepts it, modelkeep does not, because the signature must vouch for every artifact.
    from model_signing import hashing, signing, verifying

    def config() -> Any:
        return hashing.Config().set_ignored_paths(
            paths=["model.sig", ARTIFACT], ignore_git_paths=False
        )

    signing.Config().use_elliptic_key_signer(private_key=owner[0]).set_hashing_config(
        config()
    ).sign(saved, saved / "model.sig")
    verifying.Config().use_elliptic_key_verifier(public_key=owner[1]).set_hashing_config(
        config()
    ).verify(saved, saved / "model.sig")
    reason = (
        "expected the signature to cover the manifest and every artifact, got one that "
        f"leaves out {ARTIFACT!r}"
    )
    with pytest.raises(SignatureError, match=message(saved, reason)):
        verify_signature(saved, owner[1])


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"not json", "Expecting value: line 1 column 1 (char 0)"),
        (b"[]", "the signature is not a JSON object"),
    ],
    ids=["not-json", "not-an-object"],
)
def test_a_malformed_signature(
    saved: Path, owner: tuple[Path, Path], content: bytes, detail: str
) -> None:
    (saved / "model.sig").write_bytes(content)
    reason = f"expected model.sig to hold a Sigstore bundle, got unreadable content ({detail})"
    advice = (
        "Get a copy signed with `modelkeep sign` or `model_signing sign key` from its publisher."
    )
    with pytest.raises(SignatureError, match=message(saved, reason, advice)) as info:
        verify_signature(saved, owner[1])
    assert info.value.kind == "malformed"


def test_a_symlinked_signature_is_refused_by_load(
    signed: Path, owner: tuple[Path, Path], tmp_path: Path
) -> None:
    (signed / "model.sig").rename(tmp_path / "real.sig")
    (signed / "model.sig").symlink_to(tmp_path / "real.sig")
    with pytest.raises(BundleLayoutError, match=layout_message(signed, "model.sig")):
        modelkeep.load(signed, public_key=owner[1])


# ---------------------------------------------------------- refused before deserializing


class Deserialized(Exception):
    """Raised by the patched skops loader: proof that deserialization was reached."""


@pytest.fixture
def no_deserialize(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelkeep._formats.skops import SkopsFormat

    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise Deserialized

    monkeypatch.setattr(SkopsFormat, "load", refuse)


@pytest.mark.usefixtures("no_deserialize")
def test_load_refuses_before_any_artifact_is_deserialized(
    signed: Path, owner: tuple[Path, Path], tmp_path: Path
) -> None:
    # The patch is live: a load without a key reaches deserialization.
    with pytest.raises(Deserialized):
        modelkeep.load(signed)
    _, stranger = keygen(tmp_path / "keys" / "stranger")
    with pytest.raises(SignatureError) as info:
        modelkeep.load(signed, public_key=stranger)
    assert info.value.kind == "wrong_key"
    # A tampered artifact is reported by the signature step, ahead of integrity.
    artifact = signed / ARTIFACT
    original = artifact.read_bytes()
    artifact.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(SignatureError) as info:
        modelkeep.load(signed, public_key=owner[1])
    assert info.value.kind == "mismatch"
    (signed / "model.sig").unlink()
    with pytest.raises(SignatureError) as info:
        modelkeep.load(signed, public_key=owner[1])
    assert info.value.kind == "missing"


def test_a_manifest_that_no_longer_parses_is_reported_as_tampering(
    signed: Path, owner: tuple[Path, Path]
) -> None:
    manifest = signed / "modelkeep.json"
    original = manifest.read_bytes()
    manifest.write_bytes(b"[" + original[1:])
    expected = message(signed, changed("modelkeep.json", sha(original), sha(manifest.read_bytes())))
    with pytest.raises(SignatureError, match=expected):
        modelkeep.load(signed, public_key=owner[1])
    checks = modelkeep.verify(signed, public_key=owner[1])
    assert [(c.name, c.passed) for c in checks] == [("signature", False)]
    # Without a key, the same bundle is simply damaged.
    with pytest.raises(ManifestError):
        modelkeep.load(signed)


def test_a_broken_manifest_its_publisher_signed_is_a_manifest_error(
    saved: Path, owner: tuple[Path, Path]
) -> None:
    from model_signing import hashing, signing

    (saved / "modelkeep.json").write_text("{}")
    signing.Config().use_elliptic_key_signer(private_key=owner[0]).set_hashing_config(
        hashing.Config().set_ignored_paths(paths=["model.sig"], ignore_git_paths=False)
    ).sign(saved, saved / "model.sig")
    with pytest.raises(ManifestError, match=re.escape("format_version expected one of 1")):
        modelkeep.load(saved, public_key=owner[1])
    with pytest.raises(ManifestError, match=re.escape("format_version expected one of 1")):
        verify_signature(saved, owner[1])


# ------------------------------------------------------------------- save, re-sign, keys


def test_saving_over_a_signed_bundle_unsigns_it(
    signed: Path, owner: tuple[Path, Path], fitted: Any, data: Any
) -> None:
    frame, _ = data
    modelkeep.save(fitted("logistic"), signed, sample=frame, name="churn", overwrite=True)
    assert not (signed / "model.sig").exists()
    with pytest.raises(SignatureError) as info:
        modelkeep.load(signed, public_key=owner[1])
    assert info.value.kind == "missing"
    sign(signed, owner[0])
    assert modelkeep.load(signed, public_key=owner[1]).manifest.version == "2"


def test_resigning_replaces_the_signature(
    signed: Path, owner: tuple[Path, Path], tmp_path: Path
) -> None:
    new_private, new_public = keygen(tmp_path / "keys" / "rotated")
    sign(signed, new_private)
    verify_signature(signed, new_public)
    with pytest.raises(SignatureError) as info:
        verify_signature(signed, owner[1])
    assert info.value.kind == "wrong_key"
    assert sorted(os.listdir(signed)) == ["artifacts", "model.sig", "modelkeep.json"]


def test_sign_refuses_a_tampered_bundle(saved: Path, owner: tuple[Path, Path]) -> None:
    artifact = saved / ARTIFACT
    artifact.write_bytes(artifact.read_bytes() + b"!")
    with pytest.raises(IntegrityError, match=re.escape(f"Artifact {ARTIFACT!r}: size expected")):
        sign(saved, owner[0])
    assert not (saved / "model.sig").exists()


def test_sign_refuses_a_symlink(saved: Path, owner: tuple[Path, Path], tmp_path: Path) -> None:
    (saved / "artifacts" / "link").symlink_to(tmp_path)
    with pytest.raises(BundleLayoutError, match=layout_message(saved, "artifacts/link")):
        sign(saved, owner[0])
    assert not (saved / "model.sig").exists()


def test_sign_refuses_a_symlinked_artifacts_folder(
    saved: Path, owner: tuple[Path, Path], tmp_path: Path
) -> None:
    (saved / "artifacts").rename(tmp_path / "outside")
    (saved / "artifacts").symlink_to(tmp_path / "outside")
    with pytest.raises(BundleLayoutError, match=layout_message(saved, "artifacts")):
        sign(saved, owner[0])
    assert not (saved / "model.sig").exists()


def _unsupported_keys(tmp_path: Path, owner: tuple[Path, Path]) -> list[tuple[Path, str]]:
    return [
        (tmp_path / "absent", "no such file"),
        (owner[1], "expected a private key to sign with, got a public key"),
        (
            write_key(tmp_path / "ed25519", ed25519.Ed25519PrivateKey.generate()),
            "expected an EC key, got an Ed25519 key",
        ),
        (
            write_key(tmp_path / "k1", ec.generate_private_key(ec.SECP256K1())),
            "expected an EC key on P-256, P-384 or P-521, got one on secp256k1",
        ),
        (
            write_key(tmp_path / "locked", ec.generate_private_key(ec.SECP256R1()), b"pw"),
            "is encrypted with a password",
        ),
        (tmp_path / "keys", "is a directory, not a key file"),
    ]


def test_sign_refuses_unusable_keys(saved: Path, owner: tuple[Path, Path], tmp_path: Path) -> None:
    for path, problem in _unsupported_keys(tmp_path, owner):
        expected = re.escape(f"Key file {str(path)!r}: {problem}. {KEY_ADVICE}")
        with pytest.raises(SigningKeyError, match=expected):
            sign(saved, path)
    assert not (saved / "model.sig").exists()


def test_verify_refuses_unusable_public_keys(
    signed: Path, owner: tuple[Path, Path], tmp_path: Path
) -> None:
    (tmp_path / "garbage.pub").write_text("hello")
    cases = [
        (
            owner[0],
            "expected a public key, got a private key (verify with the .pub file; never hand "
            "out the private key)",
        ),
        (tmp_path / "garbage.pub", "expected a PEM public key, got something else"),
        (tmp_path / "absent.pub", "no such file"),
    ]
    for path, problem in cases:
        expected = re.escape(f"Key file {str(path)!r}: {problem}. {KEY_ADVICE}")
        with pytest.raises(SigningKeyError, match=expected):
            modelkeep.load(signed, public_key=path)


@pytest.mark.parametrize("module", ["model_signing", "OpenSSL"])
def test_missing_extra_names_it(
    signed: Path, owner: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    expected = re.escape(
        "Signing bundles needs model-signing and pyOpenSSL: pip install 'modelkeep[sign]'"
    )
    with pytest.raises(MissingDependencyError, match=expected):
        modelkeep.load(signed, public_key=owner[1])
    with pytest.raises(MissingDependencyError, match=expected):
        sign(signed, owner[0])


def test_import_modelkeep_does_not_import_signing_libraries() -> None:
    code = (
        "import sys, modelkeep; "
        "print(','.join(m for m in ('model_signing', 'cryptography', 'OpenSSL', 'sigstore') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
