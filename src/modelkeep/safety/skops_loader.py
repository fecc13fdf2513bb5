"""Load a skops artifact safely: skops' trusted types plus the reviewed ones, then every
object's state proven, as :mod:`modelkeep.safety.loader` does for a pickle.

The skops format (``formats/skops.py``) and ``scan()`` both load through here, so the
safety layer never imports a format.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from typing import BinaryIO

import skops.io as sio
from skops.io.exceptions import UntrustedTypesFoundException

from modelkeep.errors import ArtifactError, UntrustedTypesError
from modelkeep.safety.policy import TrustPolicy
from modelkeep.safety.skops_trust import REVIEWED_TYPES, VALIDATED_TREE_TYPES
from modelkeep.safety.state import prove_state

__all__ = ["load_skops"]


def load_skops(stream: BinaryIO, *, artifact: str, trusted: Sequence[str]) -> object:
    """The model in a skops file, trusting the reviewed types plus ``trusted``.

    Raises:
        NeverTrustedError: ``trusted`` names a never-trusted type.
        UntrustedTypesError: the file holds types nobody trusted.
        ArtifactError: not a readable skops file.
        UnprovenTypeError, UnsafeStateError, UnsafeModelError: as ``prove_state``.
    """
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
