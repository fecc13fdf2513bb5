"""Hot swaps: follow registry aliases, load and verify each new version, swap it in.

A model served from an alias (``churn@production``) is *watched*: every ``interval``
seconds, or at once on :meth:`AliasWatcher.reload_now` (``POST /admin/reload``), the alias
is resolved again. When it names another version, that version is loaded through every
check of :func:`modelkeep.load` (hashes against the registry's record, trust, claims, golden
replay) in the watcher's thread, away from requests, and only then put in the
:class:`~modelkeep.serve.table.ModelTable` with one atomic :meth:`ModelTable.swap`. Requests
already running keep the model they took at their start; the next ones get the new one.

A version that fails a check is refused: the old model keeps serving, a :class:`SwapEvent`
with ``accepted=False`` and the load error's message is reported, and that version is not
tried again until the alias moves elsewhere and back (a registered version never changes,
so trying again would only fail again).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from modelkeep._load import resolve_source
from modelkeep.errors import InvalidArgumentError, ModelkeepError
from modelkeep.registry import Registry
from modelkeep.registry.refs import Reference
from modelkeep.serve.table import ModelTable, ServedModel, load_bundle

__all__ = ["AliasWatcher", "SwapEvent"]

logger = logging.getLogger("modelkeep.serve.swap")


@dataclass(frozen=True)
class SwapEvent:
    """One attempt to follow an alias to a new version.

    ``accepted``: the new version passed every check and is now served; otherwise ``reason``
    is the load error's message and ``old_version`` still serves.
    """

    name: str
    old_version: str
    new_version: str
    accepted: bool
    reason: str
    time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    ref: str = ""


class AliasWatcher:
    """Poll the registry for the aliases of served models and hot-swap verified versions.

    Args:
        table: the server's models; the watcher replaces entries with :meth:`ModelTable.swap`.
        interval: seconds between two polls of the registry (:meth:`start`).
        on_event: called with every :class:`SwapEvent` (accepted or refused), from the
            watcher's thread or :meth:`reload_now`'s caller; its exceptions are logged.
        registry: the registry the aliases live in; default ``modelkeep.Registry()``
            (``$MODELKEEP_HOME``), as :func:`modelkeep.load` resolves references.
        load_options: passed to the load of each new version (``format``, ``env``,
            ``trusted`` ...), as the server loaded the first one.

    Raises:
        InvalidArgumentError: ``interval`` is not a positive number.

    Example:
        >>> watcher = AliasWatcher(table, interval=10.0, on_event=print)
        >>> watcher.watch(table.get("churn"))  # served from "churn@production"
        >>> watcher.start()
    """

    def __init__(
        self,
        table: ModelTable,
        *,
        interval: float = 10.0,
        on_event: Callable[[SwapEvent], None] | None = None,
        registry: Registry | None = None,
        load_options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise InvalidArgumentError("interval", "a positive number of seconds", repr(interval))
        self.table = table
        self.interval = float(interval)
        self.on_event = on_event
        self.registry = registry if registry is not None else Registry()
        self.load_options = dict(load_options or {})
        self._watched: dict[str, Reference] = {}
        self._refused: dict[str, tuple[str, str]] = {}  # name -> (version, manifest hash)
        self._problems: dict[str, str] = {}  # name -> the last resolution problem logged
        self._checking = threading.Lock()  # one check at a time: poll or reload_now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"AliasWatcher({sorted(self._watched)}, interval={self.interval})"

    @property
    def watched(self) -> dict[str, str]:
        """The served names followed, and the alias reference each follows."""
        return {name: str(reference) for name, reference in self._watched.items()}

    def watch(self, served: ServedModel) -> None:
        """Follow ``served.ref`` if it is an alias (``name@alias``); paths and pinned
        references (``name:3``) never move and are not watched.

        ``served.ref`` is read as :func:`modelkeep.load` reads it: an existing path wins.
        """
        found = resolve_source(served.ref)
        if isinstance(found, Reference) and found.alias is not None:
            self._watched[served.name] = found

    # --------------------------------------------------------------------------- checks

    def reload_now(self) -> list[SwapEvent]:
        """Check every watched alias at once; load, verify and swap the ones that moved.

        Returns the events of this check (an empty list when nothing moved).
        """
        with self._checking:
            events = []
            for name, reference in list(self._watched.items()):
                try:
                    event = self._check(name, reference)
                except Exception:  # one alias's failure never stops the others
                    logger.exception("Checking %s for %s failed", reference, name)
                    continue
                if event is not None:
                    events.append(event)
                    self._report(event)
            return events

    def _check(self, name: str, reference: Reference) -> SwapEvent | None:
        current = self.table.get(name)
        try:
            target = self.registry.get(str(reference))
        except ModelkeepError as exc:  # alias deleted, registry locked ...: keep serving
            message = str(exc)
            if self._problems.get(name) != message:
                self._problems[name] = message
                logger.warning(
                    "Cannot resolve %s for %s; %s %s keeps serving: %s",
                    reference,
                    name,
                    name,
                    current.version,
                    message,
                )
            return None
        finally:
            self.registry.close()
        self._problems.pop(name, None)
        new_version = str(target.version)
        identity = (new_version, target.manifest_sha256)
        if identity == (current.version, current.manifest_hash):
            self._refused.pop(name, None)  # the alias came back to what serves
            return None
        if self._refused.get(name) == identity:
            return None  # refused once already: a registered version never changes
        try:
            model = load_bundle(
                target.path, manifest_sha256=target.manifest_sha256, **self.load_options
            )
        except Exception as exc:
            self._refused[name] = identity
            reason = f"{type(exc).__name__}: {exc}"
            logger.error(
                "Refused %s:%s for %s (%s now names it); %s keeps serving. %s",
                target.name,
                new_version,
                name,
                reference,
                current.version,
                reason,
            )
            return SwapEvent(name, current.version, new_version, False, reason, ref=str(reference))
        served = ServedModel(
            name=name,
            version=new_version,
            manifest_hash=target.manifest_sha256,
            ref=current.ref,
            model=model,
        )
        old = self.table.swap(served)
        self._refused.pop(name, None)
        old_version = old.version if old is not None else current.version
        logger.info(
            "Swapped %s from version %s to %s (%s)", name, old_version, new_version, reference
        )
        return SwapEvent(
            name, old_version, new_version, True, f"{reference} moved", ref=str(reference)
        )

    def _report(self, event: SwapEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            logger.exception("The swap event handler failed for %s", event)

    # ---------------------------------------------------------------------------- thread

    def start(self) -> None:
        """Poll every ``interval`` seconds in a daemon thread (once; later calls do nothing)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="modelkeep-alias-watcher", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.reload_now()
            except Exception:  # pragma: no cover - reload_now catches per alias already
                logger.exception("The alias watcher's poll failed")

    def stop(self) -> None:
        """Stop polling; a load in progress finishes first. Safe to call twice."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
