"""keygen, sign and verify --public-key as a user runs them, and interoperability with the
reference `model_signing` command both ways (the reference tool in a subprocess, modelkeep
in this process through its real code)."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import Ran, run
from modelkeep.signing import key_id, keygen

ARTIFACT = "artifacts/pipeline.skops"
ALL_PASS = [
    "PASS manifest",
    "PASS signature",
    "PASS integrity",
    "PASS environment",
    "PASS artifact",
    "PASS manifest claims",
    "PASS golden samples",
]


def modelkeep(*args: str) -> Ran:
    return run(*args)


def model_signing(*args: str) -> subprocess.CompletedProcess[str]:
    """The reference implementation's own command line."""
    return subprocess.run(
        [sys.executable, "-m", "model_signing", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def reference_verify(bundle: Path, public: Path) -> subprocess.CompletedProcess[str]:
    return model_signing(
        "verify",
        "key",
        str(bundle),
        "--signature",
        str(bundle / "model.sig"),
        "--public_key",
        str(public),
    )


def check_names(result: Ran | subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split(":")[0] for line in result.stdout.splitlines()]


def test_keygen_sign_verify_and_the_reference_verifier_agrees(saved: Path, tmp_path: Path) -> None:
    key = tmp_path / "owner"
    made = modelkeep("keygen", "--out", str(key))
    assert made.returncode == 0, made.stderr
    public = tmp_path / "owner.pub"
    assert made.stdout.splitlines() == [
        f"Private key: {key} (mode 0600; keep it secret, sign with it)",
        f"Public key:  {public} (give it to whoever verifies)",
        f"Key id:      {key_id(public)}",
    ]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    signed = modelkeep("sign", str(saved), "--key", str(key))
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.strip() == (
        f"Signed {str(saved)!r}: {saved / 'model.sig'} covers 2 file(s) ({ARTIFACT}, "
        f"modelkeep.json); key id {key_id(public)[:16]}"
    )

    verified = modelkeep("verify", str(saved), "--public-key", str(public))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert check_names(verified) == ALL_PASS
    assert f"PASS signature: model.sig verified with {str(public)!r}" in verified.stdout

    # The standard tool accepts what modelkeep signed.
    reference = reference_verify(saved, public)
    assert reference.returncode == 0, reference.stdout + reference.stderr
    assert "Verification succeeded" in reference.stdout

    # ...and both refuse it once an artifact byte changes.
    artifact = saved / ARTIFACT
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artifact.write_bytes(bytes(data))
    assert reference_verify(saved, public).returncode == 1
    tampered = modelkeep("verify", str(saved), "--public-key", str(public))
    assert tampered.returncode == 1
    assert check_names(tampered) == ["PASS manifest", "FAIL signature"]
    assert f"changed: {ARTIFACT!r} (sha256 signed" in tampered.stdout


def test_a_bundle_signed_by_the_reference_tool_verifies_with_modelkeep(
    saved: Path, tmp_path: Path
) -> None:
    key, public = keygen(tmp_path / "owner")
    result = model_signing(
        "sign",
        "key",
        str(saved),
        "--signature",
        str(saved / "model.sig"),
        "--private_key",
        str(key),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    verified = modelkeep("verify", str(saved), "--public-key", str(public))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert check_names(verified) == ALL_PASS

    # The reference verifier skips git files by default; modelkeep does not.
    (saved / ".gitignore").write_text("*.tmp\n")
    assert reference_verify(saved, public).returncode == 0
    added = modelkeep("verify", str(saved), "--public-key", str(public))
    assert added.returncode == 1
    assert check_names(added) == ["PASS manifest", "FAIL signature"]
    assert "not signed (added after signing?): '.gitignore'" in added.stdout


def test_verify_with_another_key_fails(saved: Path, tmp_path: Path) -> None:
    key, _ = keygen(tmp_path / "owner")
    _, stranger = keygen(tmp_path / "stranger")
    assert modelkeep("sign", str(saved), "--key", str(key)).returncode == 0
    result = modelkeep("verify", str(saved), "--public-key", str(stranger))
    assert result.returncode == 1
    assert check_names(result) == ["PASS manifest", "FAIL signature"]
    assert "got one by another key" in result.stdout


def test_unsigned_bundle_with_a_key_fails(saved: Path, tmp_path: Path) -> None:
    _, public = keygen(tmp_path / "owner")
    result = modelkeep("verify", str(saved), "--public-key", str(public))
    assert result.returncode == 1
    assert result.stdout.splitlines()[1] == (
        f"FAIL signature: Signature of bundle {str(saved)!r}: expected model.sig in the "
        "bundle, found none. Sign it with `modelkeep sign`, or get a signed copy from its "
        "publisher."
    )


def test_errors_and_misuse(saved: Path, tmp_path: Path) -> None:
    key, public = keygen(tmp_path / "owner")
    again = modelkeep("keygen", "--out", str(key))
    assert again.returncode == 1
    assert again.stderr.startswith(f"Error: Cannot write key file {str(key)!r}: it already")
    with_public = modelkeep("sign", str(saved), "--key", str(public))
    assert with_public.returncode == 1
    assert with_public.stderr.startswith(
        f"Error: Key file {str(public)!r}: expected a private key to sign with, got a public key."
    )
    assert not (saved / "model.sig").exists()


@pytest.mark.parametrize(
    "args", [("sign", "."), ("keygen",), ("verify", ".", "--public-key")], ids=str
)
def test_misuse_exits_2(args: tuple[str, ...]) -> None:
    result = modelkeep(*args)
    assert result.returncode == 2, result.stdout + result.stderr
