"""``modelkeep.scan``: what a model file or bundle references, each name judged, nothing run."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelkeep.errors import ModelkeepError
from modelkeep.safety.joblib_layout import (
    MAX_DECOMPRESSED_BYTES,
    LayoutError,
    decompress,
    detect_compression,
)
from modelkeep.safety.pickle_scan import scan_pickle
from modelkeep.safety.policy import TrustPolicy, is_never
from modelkeep.safety.sniff import content_of, sniff

__all__ = ["GlobalReference", "ScanIssue", "ScanReport", "scan"]


@dataclass(frozen=True)
class GlobalReference:
    """One name a file references, with the verdict of the allowlist.

    ``verdict`` is ``"allowlisted"``, ``"trusted="`` (passed by the caller), ``"untrusted"``,
    ``"never allowed"``, or ``"untrusted call"`` (allowed as a value but called with
    arguments). ``opcode``, ``offset`` and ``stream`` describe the first reference (the
    offset is in the decompressed stream for a compressed joblib file, None in a skops
    file); ``count`` is how often the file references it.
    """

    name: str
    trusted: bool
    verdict: str
    opcode: str
    offset: int | None
    count: int
    source: str
    stream: str


@dataclass(frozen=True)
class ScanIssue:
    """A construct no saved model uses, or why a file could not be read to its end."""

    source: str
    stream: str
    offset: int | None
    problem: str


@dataclass(frozen=True)
class ScanReport:
    """What :func:`scan` found in a file or a bundle.

    ``references`` are every global referenced, ``issues`` the constructs that make a file
    untrusted without naming anything (names computed while loading, data after STOP, a
    BUILD on a class ...), and ``errors`` why a file could not be read to its end (a
    truncated or corrupt stream, an unreadable artifact).
    """

    path: str
    kind: str
    references: tuple[GlobalReference, ...]
    issues: tuple[ScanIssue, ...]
    errors: tuple[ScanIssue, ...]
    #: ``"proven"`` (loaded under restriction and every object's state proven, nothing
    #: called), ``"no code"`` (ONNX only), ``"refused"`` (the proofs or the restricted load
    #: refused it; the reason is an issue), or ``"not checked"`` (names failed first, or
    #: ``scan(..., state=False)``): then ``safe`` is withheld.
    state: str = "not checked"

    @property
    def untrusted(self) -> tuple[str, ...]:
        """The untrusted names, sorted."""
        return tuple(sorted({r.name for r in self.references if not r.trusted}))

    @property
    def safe(self) -> bool:
        """True when every name is trusted, nothing is unsafe, the files read to the end, and
        the state of every object was proven (a report that did not check state is never
        safe: names alone do not make a file safe)."""
        clean = not self.untrusted and not self.issues and not self.errors
        return clean and self.state in ("proven", "no code")

    @property
    def status(self) -> str:
        """The verdict in one word: ``"trusted"`` (``safe``), ``"untrusted"`` (a name is not
        trusted, or something is unsafe, or the state was refused or not checked), or
        ``"unreadable"`` (a file could not be read to its end)."""
        if self.errors:
            return "unreadable"
        return "trusted" if self.safe else "untrusted"

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        data = asdict(self)
        data["safe"] = self.safe
        data["untrusted"] = list(self.untrusted)
        return data


def scan(
    path: str | os.PathLike[str],
    *,
    trusted: Sequence[str] | None = None,
    max_inflated_bytes: int = MAX_DECOMPRESSED_BYTES,
    state: bool = True,
) -> ScanReport:
    """Report every global a ``.pkl``, ``.joblib`` or ``.skops`` file, or a bundle, references.

    First nothing in the file is imported, called or unpickled: pickle streams are read opcode by
    opcode (``GLOBAL``, ``STACK_GLOBAL`` resolved through the stack and memo, ``INST``,
    ``OBJ``, ``NEWOBJ``, ``EXT1/2/4`` through copyreg's registry), joblib's interleaved array
    data and nested object-array streams included, compressed joblib files inflated first.
    Each name is judged against the allowlist plus ``trusted``; whatever cannot be resolved
    without running the file is an issue, hence untrusted.

    A file is scanned as what its bytes are, never as what its name or a manifest says: a
    zip archive as skops, an ONNX model (which references no code) as ONNX, anything else
    as a pickle. In a bundle, an artifact whose content is not the format its manifest
    records is an issue too.

    Then, when every name is trusted and nothing is unsafe, the file is loaded the way
    ``safe_load`` (or a bundle's ``load``) would: under the restricted unpickler (or skops),
    and every object's state proven (``modelkeep.safety.state``), without calling any
    method of the model. A refusal there is an issue and ``state`` is ``"refused"``; only a
    report whose ``state`` is ``"proven"`` (or ``"no code"`` for ONNX) is ``safe``.

    Args:
        path: a file, or a bundle directory (each artifact in its manifest is scanned).
        trusted: exact names to count as trusted, as ``load(..., trusted=...)`` would.
        max_inflated_bytes: what a compressed file may inflate to (default 1 GiB); a file
            inflating to more is reported as an error, not scanned.
        state: False to skip the restricted load and the proofs (names only); the report
            then says ``state="not checked"`` and is never ``safe``.

    Raises:
        OSError: the path cannot be read. ManifestError: a bundle's manifest is invalid.
        InvalidChoiceError: ``max_inflated_bytes`` is not a whole number above 0.
        BundleLayoutError: a bundle holds a symlink (or a special file) anywhere.

    Example:
        >>> report = modelkeep.scan("legacy/churn.joblib")
        >>> report.safe, report.untrusted
        (False, ('posix.system',))
    """
    from modelkeep.safety.loader import check_inflated_cap, read_file

    policy = TrustPolicy(trusted)
    cap = check_inflated_cap(max_inflated_bytes)
    target = Path(path)
    if target.is_dir():
        report = _scan_bundle(target, policy, cap)
        return _with_state(report, target, policy, cap) if state else report
    data = read_file(target)
    try:
        kind, references, issues, errors = _scan_bytes(
            data, str(target), policy, format=None, max_inflated_bytes=cap
        )
    except (ModelkeepError, OSError):
        raise
    except Exception as exc:  # the boundary: a crafted file never makes scan() raise
        kind, references, issues = "unknown", [], []
        errors = [ScanIssue(str(target), "", None, _raised(exc))]
    report = ScanReport(str(target), kind, tuple(references), tuple(issues), tuple(errors))
    return _with_state(report, target, policy, cap, data) if state else report


def _with_state(
    report: ScanReport,
    target: Path,
    policy: TrustPolicy,
    cap: int,
    data: bytes | memoryview | None = None,
) -> ScanReport:
    """The report with ``state`` set: the restricted load and the proofs, run only when the
    names passed (nothing a name check refuses is ever loaded)."""
    from dataclasses import replace

    if report.untrusted or report.issues or report.errors:
        return report
    if report.kind == "onnx":
        return replace(report, state="no code")
    try:
        _prove(target, report.kind, policy, cap, data)
    except ModelkeepError as exc:
        issue = ScanIssue(str(target), "state", None, str(exc))
        return replace(report, issues=(*report.issues, issue), state="refused")
    return replace(report, state="proven")


def _prove(
    target: Path, kind: str, policy: TrustPolicy, cap: int, data: bytes | memoryview | None
) -> None:
    """Load ``target`` (whose content the scan found to be ``kind``) under restriction and
    prove its state, as the loaders do."""
    from modelkeep.safety.loader import load_pickle_bytes

    if data is not None:
        # The scan already told what the bytes are (report.kind), never what the name says.
        if kind == "skops":
            _prove_skops(data, str(target), policy)
        elif kind.startswith(("pickle", "joblib")):
            load_pickle_bytes(
                data, artifact=str(target), trusted=policy.trusted, max_inflated_bytes=cap
            )
        return
    from modelkeep._reader import open_bundle

    with open_bundle(target) as reader:
        for artifact in reader.manifest().artifacts:
            with reader.open_artifact(artifact) as stream:
                content = stream.read()
            if artifact.format == "skops":
                _prove_skops(content, artifact.path, policy)
            elif artifact.format in ("pickle", "joblib"):
                load_pickle_bytes(
                    content,
                    artifact=artifact.path,
                    trusted=policy.trusted,
                    format=artifact.format,
                    max_inflated_bytes=cap,
                )


def _prove_skops(data: bytes | memoryview, source: str, policy: TrustPolicy) -> None:
    from modelkeep.safety.skops_loader import load_skops

    load_skops(io.BytesIO(bytes(data)), artifact=source, trusted=policy.trusted)


_Found = tuple[str, list[GlobalReference], list[ScanIssue], list[ScanIssue]]


def _scan_bundle(bundle: Path, policy: TrustPolicy, max_inflated_bytes: int) -> ScanReport:
    from modelkeep._reader import open_bundle

    references: list[GlobalReference] = []
    issues: list[ScanIssue] = []
    errors: list[ScanIssue] = []
    # The reader refuses a bundle holding a symlink anywhere before anything is read.
    with open_bundle(bundle) as reader:
        manifest = reader.manifest()
        for artifact in manifest.artifacts:
            try:
                data = reader.read(artifact.path)
            except OSError as exc:
                errors.append(ScanIssue(artifact.path, "", None, f"cannot be read ({exc})"))
                continue
            _, refs, found, failed = _scan_bytes(
                data,
                artifact.path,
                policy,
                format=artifact.format,
                max_inflated_bytes=max_inflated_bytes,
            )
            references += refs
            issues += found
            errors += failed
    return ScanReport(str(bundle), "bundle", tuple(references), tuple(issues), tuple(errors))


def _scan_bytes(
    data: bytes | memoryview,
    source: str,
    policy: TrustPolicy,
    *,
    format: str | None,
    max_inflated_bytes: int,
) -> _Found:
    """Scan ``data`` as what its bytes are; ``format`` is only what a manifest claims.

    A claim the content contradicts (a pickle recorded as ``"onnx"``) is an issue, so the
    report is not safe, and the content is scanned as what it is.
    """
    content = sniff(data)
    if content == "skops":
        found = _scan_skops(data, source, policy)
    elif content == "onnx":
        found = "onnx", [], [], []  # a format without code references
    else:
        found = _scan_pickle(data, source, policy, max_inflated_bytes)
    if format is not None and content_of(format) != content:
        kind, references, issues, errors = found
        problem = (
            f"the manifest records format {format!r}, but the content is {kind}: the "
            "manifest misdescribes the file, and load() refuses it"
        )
        found = kind, references, [ScanIssue(source, "", None, problem), *issues], errors
    return found


def _scan_pickle(
    data: bytes | memoryview, source: str, policy: TrustPolicy, max_inflated_bytes: int
) -> _Found:
    try:
        method = detect_compression(data)
        payload = data if method is None else decompress(data, method, limit=max_inflated_bytes)
    except LayoutError as exc:
        return "joblib", [], [], [ScanIssue(source, "main", 0, exc.problem)]
    except MemoryError as exc:
        return "joblib", [], [], [ScanIssue(source, "main", 0, _raised(exc))]
    try:
        result = scan_pickle(payload)
    except Exception as exc:  # a crafted stream reaching a gap in the scanner: an error
        return "pickle", [], [], [ScanIssue(source, "main", None, _raised(exc))]
    kind = "joblib" if method or result.has_arrays else "pickle"
    if method:
        kind += f" ({method})"
    called = {f"{m}.{n}" for m, n in result.calls}
    grouped: dict[str, list[Any]] = {}
    for ref in result.references:
        key = ref.fullname
        if key in grouped:
            grouped[key][3] += 1
            continue
        trusted, verdict = _verdict(ref.module, ref.name, policy, ref.fullname in called)
        grouped[key] = [ref, trusted, verdict, 1]
    references = [
        GlobalReference(
            ref.fullname, trusted, verdict, ref.opcode, ref.offset, count, source, ref.stream
        )
        for ref, trusted, verdict, count in grouped.values()
    ]
    issues = [ScanIssue(source, f.stream, f.offset, f.problem) for f in result.findings]
    errors = []
    if result.error is not None:
        errors.append(ScanIssue(source, "main", result.error.offset, result.error.problem))
    return kind, references, issues, errors


def _raised(exc: BaseException) -> str:
    """Why a file could not be scanned, when the scan itself failed on it."""
    if isinstance(exc, MemoryError):
        return "scanning it needs more memory than this process has (MemoryError)"
    if isinstance(exc, RecursionError):
        return "it nests deeper than Python can follow (RecursionError)"
    return f"scanning it raised {type(exc).__name__}: {exc}; modelkeep cannot judge it"


def _verdict(module: str, name: str, policy: TrustPolicy, called: bool) -> tuple[bool, str]:
    if is_never(module, name):
        return False, "never allowed"
    if not policy.allows(module, name):
        return False, "untrusted"
    if called and not policy.allows_call(module, name):
        return False, "untrusted call"
    full = f"{module}.{name}"
    return True, "trusted=" if full in policy.trusted else "allowlisted"


def _scan_skops(view: bytes | memoryview, source: str, policy: TrustPolicy) -> _Found:
    import skops.io as sio

    data = bytes(view)

    from modelkeep.safety.skops_trust import REVIEWED_TYPES, VALIDATED_TREE_TYPES

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
        untrusted = set(sio.get_untrusted_types(data=data))
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        return "skops", [], [], [ScanIssue(source, "", None, f"not a readable skops file ({exc})")]
    untrusted -= REVIEWED_TYPES | VALIDATED_TREE_TYPES | set(policy.trusted)
    counts: dict[str, int] = {}
    for name in _skops_names(schema):
        counts[name] = counts.get(name, 0) + 1
    for name in untrusted:
        counts.setdefault(name, 1)
    references = []
    for name, count in sorted(counts.items()):
        if name in untrusted:
            verdict = "untrusted"
        elif name in policy.trusted:
            verdict = "trusted="
        else:
            verdict = "allowlisted"
        references.append(
            GlobalReference(
                name,
                verdict != "untrusted",
                verdict,
                "skops node",
                None,
                count,
                source,
                "schema.json",
            )
        )
    return "skops", references, [], []


def _skops_names(node: object) -> Iterator[str]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            module, cls = item.get("__module__"), item.get("__class__")
            if isinstance(module, str) and isinstance(cls, str):
                yield f"{module}.{cls}"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
