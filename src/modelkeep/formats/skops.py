"""The default format: skops' JSON-schema-plus-arrays zip, which never unpickles."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import skops.io as sio
from skops.io.exceptions import UntrustedTypesFoundException

from modelkeep.errors import ArtifactError, UntrustedTypesError
from modelkeep.formats.base import DumpContext
from modelkeep.safety.policy import TrustPolicy
from modelkeep.safety.skops_trust import REVIEWED_TYPES, VALIDATED_TREE_TYPES
from modelkeep.safety.state import prove_state

__all__ = ["SkopsFormat"]


class SkopsFormat:
    """``artifacts/pipeline.skops``, loaded with skops' trusted types plus reviewed ones."""

    name = "skops"
    extension = "skops"

    def dump(
        self, model: object, path: Path, *, context: DumpContext | None = None
    ) -> dict[str, Any]:
        sio.dump(model, path)
        needs = sorted(sio.get_untrusted_types(file=path))
        return {"skops_version": _skops_version(), "needs_trust": needs}

    def load(self, stream: BinaryIO, *, artifact: str, trusted: Sequence[str]) -> object:
        # The one trust policy, as for a pickle: a never-trusted name (os.system) is refused
        # before skops is asked to admit it.
        TrustPolicy(trusted)
        allowed = sorted(REVIEWED_TYPES | VALIDATED_TREE_TYPES | set(trusted))
        try:
            model = sio.load(stream, trusted=allowed)
        except UntrustedTypesFoundException as exc:
            stream.seek(0)
            untrusted = set(sio.get_untrusted_types(data=stream.read())) - set(allowed)
            raise UntrustedTypesError(artifact, untrusted) from exc
        except (zipfile.BadZipFile, KeyError, ValueError, TypeError, EOFError) as exc:
            raise ArtifactError(artifact, "skops", exc) from exc
        # The types trusted above are admitted only on this condition: their whole state
        # proven before any use, exactly as for a pickle (skops trusts the same classes).
        prove_state(model, trusted=trusted)
        return model


def _skops_version() -> str:
    from importlib.metadata import version

    return version("skops")
