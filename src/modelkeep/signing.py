"""Signed bundles, in the OpenSSF Model Signing format, offline, with EC keys.

The signature is ``model.sig`` in the bundle's root: a Sigstore bundle whose DSSE envelope
holds an in-toto statement listing the SHA-256 of every file in the bundle directory
(``model.sig`` itself excepted), signed with an EC private key. It is written and checked
by the format's reference library (PyPI ``model-signing``, the ``[sign]`` extra), so::

    model_signing verify key BUNDLE --signature BUNDLE/model.sig --public_key KEY.pub

accepts what :func:`sign` writes, and :func:`verify_signature` accepts what
``model_signing sign key BUNDLE --signature BUNDLE/model.sig --private_key KEY`` writes.

modelkeep checks more than the reference verifier does, because a bundle is more than a
directory of files:

- the signed statement must cover ``modelkeep.json`` (the exact bytes the load parsed) and
  every artifact the manifest lists, with the SHA-256 the manifest records: a signature
  that leaves either out (``--ignore-paths`` when signing) is refused;
- every file in the bundle must be signed, including the git files (``.git/``,
  ``.gitignore`` ...) the reference verifier skips by default: an added file is refused.

Nothing here imports ``model_signing`` or ``cryptography`` until it is used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelkeep._fs import sha256_stream, write_file
from modelkeep._optional import require
from modelkeep._reader import SIGNATURE_NAME, BundleReader, open_bundle
from modelkeep.errors import (
    ManifestError,
    SignatureError,
    SigningKeyError,
    SigningKeyExistsError,
)
from modelkeep.manifest import MANIFEST_NAME, Artifact, Manifest

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import (
        EllipticCurvePrivateKey,
        EllipticCurvePublicKey,
    )

__all__ = [
    "PUBLIC_KEY_SUFFIX",
    "SIGNATURE_NAME",
    "VerifiedSignature",
    "check_signature",
    "key_id",
    "keygen",
    "sign",
    "verify_signature",
]

PUBLIC_KEY_SUFFIX = ".pub"

# The curves model-signing 1.1.1 accepts (it refuses Ed25519 and RSA keys).
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
_SHOWN_DIGEST = 12


@dataclass(frozen=True)
class VerifiedSignature:
    """What a signature covers, once written by :func:`sign` or checked by a verify.

    ``key_id`` is the SHA-256 of the public key (PEM), the hint the format records in the
    signature; ``files`` are the signed files, relative to the bundle, sorted.
    """

    signature: Path
    key_id: str
    files: tuple[str, ...]


# ------------------------------------------------------------------------------- keys


def keygen(out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write a new EC P-256 key pair: the private key at ``out``, the public key beside it.

    The private key is unencrypted PKCS#8 PEM, created with mode 0600 (never readable by
    others, not even for a moment); the public key is ``out + ".pub"`` (SubjectPublicKeyInfo
    PEM, mode 0644), the file to hand to whoever verifies.

    Returns:
        (private key path, public key path).

    Raises:
        SigningKeyExistsError: either file exists already; nothing is written.
        SigningKeyError: a file cannot be written (e.g. its directory does not exist).
        MissingDependencyError: the ``[sign]`` extra is not installed.

    Example:
        >>> private, public = modelkeep.keygen("keys/churn")  # keys/churn, keys/churn.pub
    """
    _require_sign_extra()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private_path = Path(out)
    public_path = Path(f"{os.fspath(out)}{PUBLIC_KEY_SUFFIX}")
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise SigningKeyExistsError(str(path))
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_new(private_path, private_pem, 0o600)
    try:
        _write_new(public_path, _public_pem(key.public_key()), 0o644)
    except BaseException:
        private_path.unlink()
        raise
    return private_path, public_path


def key_id(public_key: str | os.PathLike[str]) -> str:
    """The id of the public key in this PEM file: the SHA-256 (hex) of the key's PEM.

    It is the key hint the format records in each signature, so a mismatch names both.

    Raises:
        SigningKeyError: the file is not a supported public key.
    """
    _require_sign_extra()
    return _key_id(_load_public_key(Path(public_key)))


def _key_id(public_key: EllipticCurvePublicKey) -> str:
    return hashlib.sha256(_public_pem(public_key)).hexdigest()


def _public_pem(public_key: EllipticCurvePublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # Exclusive: never replace a key; the mode is set before the first byte, so the private
    # key is never readable by others, exactly whatever the umask.
    try:
        write_file(path, data, mode=mode, exclusive=True)
    except FileExistsError as exc:
        raise SigningKeyExistsError(str(path)) from exc
    except OSError as exc:
        raise SigningKeyError(str(path), f"cannot be written ({exc.strerror})") from exc


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise SigningKeyError(str(path), "no such file") from exc
    except IsADirectoryError as exc:
        raise SigningKeyError(str(path), "is a directory, not a key file") from exc
    except OSError as exc:
        raise SigningKeyError(str(path), f"cannot be read ({exc.strerror})") from exc


def _load_private_key(path: Path) -> EllipticCurvePrivateKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read_key_file(path)
    if b"PRIVATE KEY-----" not in data and b"PUBLIC KEY-----" in data:
        raise SigningKeyError(str(path), "expected a private key to sign with, got a public key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # cryptography's way of saying "encrypted, no password given"
        raise SigningKeyError(str(path), "is encrypted with a password") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(str(path), "expected a PEM private key, got something else") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningKeyError(str(path), f"expected an EC key, got {_describe_key(key)}")
    _check_curve(path, key.curve.name)
    return key


def _load_public_key(path: Path) -> EllipticCurvePublicKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read_key_file(path)
    if b"PRIVATE KEY-----" in data:
        raise SigningKeyError(
            str(path),
            "expected a public key, got a private key (verify with the .pub file; never hand "
            "out the private key)",
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(str(path), "expected a PEM public key, got something else") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SigningKeyError(str(path), f"expected an EC key, got {_describe_key(key)}")
    _check_curve(path, key.curve.name)
    return key


def _describe_key(key: object) -> str:
    name = type(key).__name__.removeprefix("_")
    for suffix in ("PrivateKey", "PublicKey"):
        name = name.removesuffix(suffix)
    return f"an {name} key" if name[:1] in "AEIOU" else f"a {name} key"


def _check_curve(path: Path, curve: str) -> None:
    if curve not in _CURVES:
        raise SigningKeyError(
            str(path), f"expected an EC key on P-256, P-384 or P-521, got one on {curve}"
        )


# ------------------------------------------------------------------------------- sign


def sign(bundle: str | os.PathLike[str], key: str | os.PathLike[str]) -> VerifiedSignature:
    """Sign a bundle with an EC private key: write ``model.sig`` into its root.

    The signature covers every file in the bundle directory (manifest, artifacts, anything
    else present), except ``model.sig`` itself; an existing ``model.sig`` is replaced
    atomically. The bundle is checked first: an artifact that no longer matches its manifest
    is refused rather than signed.

    Args:
        bundle: the bundle directory.
        key: the private key, a PEM file as :func:`keygen` writes.

    Returns:
        What was signed (:class:`VerifiedSignature`).

    Raises:
        BundleNotFoundError, ManifestError, IntegrityError: the bundle is not a sound bundle.
        BundleLayoutError: a symlink or special file anywhere in the bundle.
        SigningKeyError: the key cannot be used.
        SignatureError: model_signing could not sign it (kind ``"unsignable"``), or the
            bundle changed while it was being signed (kind ``"mismatch"``).
        MissingDependencyError: the ``[sign]`` extra is not installed.

    Example:
        >>> modelkeep.sign("churn_model", "keys/churn")
    """
    _require_sign_extra()
    from model_signing import signing as ms_signing

    directory = Path(bundle)
    key_path = Path(key)
    private_key = _load_private_key(key_path)
    with open_bundle(directory) as reader:
        manifest = reader.manifest()
        manifest_bytes = _read_bytes(reader)
        for artifact in manifest.artifacts:
            reader.check_artifact(artifact)
        files = _signable(reader)

    with tempfile.TemporaryDirectory(prefix="modelkeep-sign-") as scratch:
        written = Path(scratch) / SIGNATURE_NAME
        try:
            config = ms_signing.Config().use_elliptic_key_signer(private_key=key_path)
            config.set_hashing_config(_hashing_config()).sign(directory, written)
        except Exception as exc:  # model_signing raises bare ValueError/OSError
            raise SignatureError(
                str(directory), f"model_signing could not sign it: {exc}", kind="unsignable"
            ) from exc
        data = written.read_bytes()

    signed = _parse_signature(str(directory), data)
    _check_coverage(str(directory), signed.resources, manifest_bytes, manifest.artifacts)
    if set(signed.resources) != set(files):
        raise SignatureError(
            str(directory),
            "the bundle's files changed while it was being signed",
            kind="mismatch",
        )
    target = directory / SIGNATURE_NAME
    write_file(target, data)
    return VerifiedSignature(target, _key_id(private_key.public_key()), tuple(sorted(files)))


# ----------------------------------------------------------------------------- verify


def verify_signature(
    bundle: str | os.PathLike[str], public_key: str | os.PathLike[str]
) -> VerifiedSignature:
    """Check that ``model.sig`` was made with ``public_key``'s private key over this bundle.

    Passes only when the signature verifies with that key (through ``model_signing``), it
    covers the manifest and every artifact the manifest lists, and every file in the bundle
    is signed and unchanged. This checks authorship and integrity only; :func:`modelkeep.load`
    with ``public_key=`` does this and then every other load check.

    Raises:
        SignatureError: ``kind`` ``"missing"``, ``"wrong_key"``, ``"malformed"`` or
            ``"mismatch"`` (a file changed, added or removed).
        SigningKeyError: the public key cannot be used.
        BundleNotFoundError, ManifestError: not a readable bundle.
        MissingDependencyError: the ``[sign]`` extra is not installed.

    Example:
        >>> modelkeep.verify_signature("churn_model", "keys/churn.pub").key_id
        '163f43596ed13bc3...'
    """
    directory = Path(bundle)
    with open_bundle(directory) as reader:
        signature = reader.signature()
        try:
            manifest: Manifest | None = reader.manifest()
            error: ManifestError | None = None
        except ManifestError as exc:
            if reader.manifest_bytes is None:
                raise  # not read at all: nothing for the signature to judge
            manifest, error = None, exc
        manifest_bytes = _read_bytes(reader)
    verified = check_signature(
        directory,
        signature=signature,
        manifest_bytes=manifest_bytes,
        manifest=manifest,
        public_key=public_key,
    )
    if error is not None:
        raise error  # a changed byte is a signature failure before it is a parse error
    return verified


def check_signature(
    directory: Path,
    *,
    signature: bytes | None,
    manifest_bytes: bytes,
    manifest: Manifest | None,
    public_key: str | os.PathLike[str],
) -> VerifiedSignature:
    """The signature check, given what the caller already read from the bundle.

    ``signature`` is the content of ``model.sig`` (None when absent) and ``manifest_bytes``
    the exact manifest bytes ``manifest`` was parsed from: the check ties the signature to
    those bytes, and through the manifest's SHA-256 entries to the artifacts, so a caller
    that goes on to read artifacts and check them against the manifest uses signed bytes
    even if files change on disk in between. ``manifest`` is None when those bytes do not
    parse: the check then tells a changed manifest (a signature failure) from one its
    publisher signed broken (it passes, and the caller reports the parse error).
    """
    _require_sign_extra()
    bundle = str(directory)
    key_path = Path(public_key)
    key = _load_public_key(key_path)
    if signature is None:
        raise SignatureError(
            bundle, f"expected {SIGNATURE_NAME} in the bundle, found none", kind="missing"
        )
    signed = _parse_signature(bundle, signature)
    ours = _key_id(key)
    if signed.key_hint is not None and signed.key_hint != ours:
        raise SignatureError(
            bundle,
            f"expected a signature by the key in {str(key_path)!r} (key id "
            f"{ours[:16]}), got one by another key (key id {signed.key_hint[:16]})",
            kind="wrong_key",
        )
    # Opened before the reference verifier reads by path: a symlink anywhere is refused.
    with open_bundle(directory) as reader:
        files = _signable(reader)
        reported = _reference_verify(bundle, directory, signature, key_path)
        expected = _expected(manifest_bytes, manifest.artifacts if manifest is not None else [])
        _check_left_out(bundle, signed.resources, expected)
        problems = _differences(reader, signed.resources, files, hashed=bool(reported))
    if problems or reported:
        detail = "; ".join(problems) if problems else reported
        raise SignatureError(
            bundle, f"the files differ from the signed ones: {detail}", kind="mismatch"
        )
    _check_digests(bundle, signed.resources, expected)
    return VerifiedSignature(directory / SIGNATURE_NAME, ours, tuple(sorted(signed.resources)))


def _reference_verify(bundle: str, directory: Path, signature: bytes, key_path: Path) -> str:
    """Verify with model_signing; return its mismatch report ("" when the files match).

    model_signing reads the signature from a path, so the bytes already read are written to
    a private scratch file: the signature verified is the one parsed, whatever happens to
    ``model.sig`` meanwhile.
    """
    from cryptography.exceptions import InvalidSignature
    from model_signing import verifying

    with tempfile.TemporaryDirectory(prefix="modelkeep-verify-") as scratch:
        copy = Path(scratch) / SIGNATURE_NAME
        copy.write_bytes(signature)
        config = verifying.Config().use_elliptic_key_verifier(public_key=key_path)
        try:
            config.set_hashing_config(_hashing_config()).verify(directory, copy)
        except InvalidSignature as exc:
            raise SignatureError(
                bundle,
                f"expected a signature made with the private key of {str(key_path)!r}, got "
                "one that does not verify with it (another key made it, or model.sig was "
                "altered)",
                kind="wrong_key",
            ) from exc
        except ValueError as exc:
            message = str(exc)
            if message.startswith("Signature mismatch"):
                return message
            if message.startswith("Key mismatch"):
                raise SignatureError(
                    bundle,
                    f"expected a signature by the key in {str(key_path)!r}, got one by another key",
                    kind="wrong_key",
                ) from exc
            raise _unreadable(bundle, exc) from exc
        except Exception as exc:  # e.g. KeyError on content model_signing trips over
            raise _unreadable(bundle, exc) from exc
    return ""


def _unreadable(bundle: str, exc: Exception) -> SignatureError:
    # Media type, statement type, root digest, or the bundle's own schema (pydantic errors
    # are ValueErrors too): all say model.sig is not a signature model_signing accepts.
    detail = " ".join(str(exc).split())
    return SignatureError(
        bundle,
        "expected a Model Signing signature, got one model_signing refuses "
        f"({type(exc).__name__}: {detail})",
        kind="malformed",
    )


def _hashing_config() -> Any:
    from model_signing import hashing

    # File-level SHA-256 (the format's default, and what the manifest records), nothing
    # ignored but the signature itself: git files included, so adding one breaks it.
    return (
        hashing.Config()
        .use_file_serialization(hashing_algorithm="sha256")
        .set_ignored_paths(paths=[SIGNATURE_NAME], ignore_git_paths=False)
    )


# ---------------------------------------------------------------- reading the signature


@dataclass(frozen=True)
class _Signed:
    key_hint: str | None
    resources: dict[str, str]  # signed file -> sha256 hex


def _parse_signature(bundle: str, data: bytes) -> _Signed:
    """The key hint and the signed (file, SHA-256) list, read from ``model.sig``'s bytes.

    Nothing read here is trusted before the reference verifier has checked the same bytes;
    it serves to word errors precisely and, after verification, to check coverage.
    """
    try:
        document = _object(json.loads(data.decode("utf-8")), "the signature")
        material = _object(document.get("verificationMaterial"), "verificationMaterial")
        key = material.get("publicKey")
        hint = key.get("hint") if isinstance(key, dict) else None
        envelope = _object(document.get("dsseEnvelope"), "dsseEnvelope")
        payload = base64.b64decode(str(envelope.get("payload")), validate=True)
        statement = _object(json.loads(payload.decode("utf-8")), "the signed statement")
    except (UnicodeDecodeError, json.JSONDecodeError, binascii.Error, _Malformed) as exc:
        raise SignatureError(
            bundle,
            f"expected {SIGNATURE_NAME} to hold a Sigstore bundle, got unreadable content ({exc})",
            kind="malformed",
        ) from exc
    predicate_type = statement.get("predicateType")
    if predicate_type != _PREDICATE_TYPE:
        raise SignatureError(
            bundle,
            f"expected a statement of type {_PREDICATE_TYPE!r}, got {predicate_type!r}",
            kind="malformed",
        )
    predicate = statement.get("predicate")
    predicate = predicate if isinstance(predicate, dict) else {}
    serialization = predicate.get("serialization")
    serialization = serialization if isinstance(serialization, dict) else {}
    layout = (serialization.get("method"), serialization.get("hash_type"))
    if layout != ("files", "sha256"):
        raise SignatureError(
            bundle,
            f"expected one SHA-256 per file (method 'files', hash_type 'sha256'), got method "
            f"{layout[0]!r}, hash_type {layout[1]!r}; sign without sharding or another hash",
            kind="malformed",
        )
    resources: dict[str, str] = {}
    for entry in predicate.get("resources") or []:
        if not (
            isinstance(entry, dict)
            and entry.get("algorithm") == "sha256"
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("digest"), str)
        ):
            raise SignatureError(
                bundle,
                f"expected resources of the form {{name, algorithm 'sha256', digest}}, got "
                f"{str(entry)[:80]}",
                kind="malformed",
            )
        resources[entry["name"]] = entry["digest"]
    return _Signed(hint if isinstance(hint, str) and hint else None, resources)


class _Malformed(Exception):
    pass


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{what} is not a JSON object")
    return value


# --------------------------------------------------------------------- the bundle's files


def _read_bytes(reader: BundleReader) -> bytes:
    """The manifest bytes ``reader.manifest()`` read (it raises when it reads none)."""
    if reader.manifest_bytes is None:  # pragma: no cover - manifest() raised already
        raise RuntimeError("the manifest is read before its bytes are used")
    return reader.manifest_bytes


def _signable(reader: BundleReader) -> list[str]:
    """Every file of the bundle but the signature, as sorted POSIX paths relative to it.

    The reader has refused the bundle already if it holds anything but regular files and
    directories (a link could make the signature vouch for a file outside the bundle).
    """
    return [name for name in reader.files if name != SIGNATURE_NAME]


def _differences(
    reader: BundleReader,
    signed: Mapping[str, str],
    files: list[str],
    *,
    hashed: bool,
) -> list[str]:
    """What differs between the bundle's files and the signed list, worded for people.

    Added files are found by name alone; changed ones only when ``hashed`` (after the
    reference verifier reported a mismatch: otherwise it already proved the digests match).
    """
    problems: list[str] = []
    added = [f for f in files if f not in signed]
    if added:
        problems.append(f"not signed (added after signing?): {_names(added)}")
    missing = [f for f in signed if f not in files]
    if missing:
        problems.append(f"signed but missing: {_names(missing)}")
    if hashed:
        for name in sorted(set(files) & set(signed)):
            with reader.open(name) as stream:
                digest, _ = sha256_stream(stream)
            if digest != signed[name]:
                problems.append(
                    f"changed: {name!r} (sha256 signed {signed[name][:_SHOWN_DIGEST]}..., "
                    f"found {digest[:_SHOWN_DIGEST]}...)"
                )
    return problems


def _check_coverage(
    bundle: str,
    signed: Mapping[str, str],
    manifest_bytes: bytes,
    artifacts: Iterable[Artifact],
) -> None:
    """The signature must vouch for the manifest read and every artifact it lists."""
    expected = _expected(manifest_bytes, artifacts)
    _check_left_out(bundle, signed, expected)
    _check_digests(bundle, signed, expected)


def _expected(manifest_bytes: bytes, artifacts: Iterable[Artifact]) -> dict[str, str]:
    """The files a signature must cover, with their SHA-256: manifest and artifacts."""
    expected = {MANIFEST_NAME: hashlib.sha256(manifest_bytes).hexdigest()}
    expected.update({a.path: a.sha256 for a in artifacts})
    return expected


def _check_left_out(bundle: str, signed: Mapping[str, str], expected: Mapping[str, str]) -> None:
    left_out = [name for name in expected if name not in signed]
    if left_out:
        raise SignatureError(
            bundle,
            f"expected the signature to cover the manifest and every artifact, got one that "
            f"leaves out {_names(left_out)}",
            kind="mismatch",
        )


def _check_digests(bundle: str, signed: Mapping[str, str], expected: Mapping[str, str]) -> None:
    for name, digest in expected.items():
        if signed[name] != digest:
            source = "as read" if name == MANIFEST_NAME else "as the manifest records it"
            raise SignatureError(
                bundle,
                f"expected the signature to vouch for {name!r} {source} (sha256 "
                f"{digest[:_SHOWN_DIGEST]}...), got sha256 {signed[name][:_SHOWN_DIGEST]}... "
                "signed",
                kind="mismatch",
            )


def _names(names: Iterable[str]) -> str:
    from modelkeep.errors import format_names

    return format_names(names)


def _require_sign_extra() -> None:
    # OpenSSL: model-signing 1.1.1 imports it without declaring it.
    require(
        "sign",
        "cryptography",
        "model_signing",
        "OpenSSL",
        feature="Signing bundles",
        packages="model-signing and pyOpenSSL",
    )
