"""The default metadata store (``backends.MetadataStore``): the index on SQLAlchemy Core.

Tables::

    names      name -> next version number (a counter: numbers are never reused)
    versions   one row per registered version: where its folder is, and what it holds
    aliases    (name, alias) -> version
    alias_log  append-only: every alias move (from, to, when, by, why)
    meta       the index's own format version

Every query is SQLAlchemy Core, so another database (PostgreSQL for a team) needs only a
URL and its engine set-up below, not new queries. The embedded default is a SQLite file
in WAL mode (readers never block the writer) with a busy timeout, so concurrent processes
queue for the write lock instead of failing. WAL is switched on once, by whoever creates
the file (the mode is stored in it); opening never writes, so a registry on a read-only
mount can be read: there the file is opened ``mode=ro&immutable=1`` (nobody can be writing
it, and SQLite could not create its ``-shm`` file to coordinate with a writer anyway).

The index is not the only copy of what it holds: each write runs a ``before_commit``
callback inside its transaction, which the registry uses to journal the version or alias
move in the store (``journal.py``); :meth:`SqlStore.restore` writes a fresh index back from
that journal.

Writes that read-then-write (the next version number, an alias's previous value) run in
one write transaction that takes the database's write lock at its start (SQLite
``BEGIN IMMEDIATE``; ``SELECT ... FOR UPDATE`` on servers), so concurrent writers are
serialized and none reads a value another is about to change.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from modelkeep.errors import RegistryIndexError, UnknownReferenceError, VersionInUseError
from modelkeep.registry._time import utc_now
from modelkeep.registry.backends import (
    alias_log_problems,
    counter_problem,
    next_schema_version,
)
from modelkeep.registry.records import AliasEvent, IndexedVersion, Problem, VersionRecord
from modelkeep.registry.refs import Reference

__all__ = ["REVISIONS", "SCHEMA_REVISION", "STORE_FORMAT", "SqlStore", "sqlite_url"]

#: Version of the index's table layout, recorded in ``meta`` (a modelkeep from before
#: migrations refuses any other).
STORE_FORMAT = "2"
#: The index's schema versions (Alembic revisions, ``migrations/versions``), oldest first;
#: the last is the one this modelkeep writes. Indexes without an ``alembic_version`` table
#: are from before migrations: ``store_format`` 1 is revision 0001.
REVISIONS = ("0001", "0002")
SCHEMA_REVISION = REVISIONS[-1]

_metadata = sa.MetaData()

names = sa.Table(
    "names",
    _metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("next_version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)

versions = sa.Table(
    "versions",
    _metadata,
    sa.Column("name", sa.String(128), sa.ForeignKey("names.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("folder", sa.String(64), nullable=False, unique=True),
    sa.Column("manifest_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("registered_at", sa.String(40), nullable=False),
    sa.Column("registered_by", sa.String(256), nullable=False),
    sa.Column("task", sa.String(32), nullable=False),
    sa.Column("model_type", sa.String(512), nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("data_version", sa.String(512)),
    sa.Column("data_fingerprint", sa.String(128), nullable=False),
    sa.Column("schema_hash", sa.String(80), nullable=False),
    sa.Column("label_map", sa.JSON),
    sa.Column("environment", sa.JSON, nullable=False),
    sa.Column("formats", sa.JSON, nullable=False),
    sa.Column("parent", sa.String(256)),
    sa.Column("git_commit", sa.String(64)),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("source", sa.Text, nullable=False),
    # The feature-schema version: 1 for a name's first version, one more each time a
    # version's feature schema differs from the previous version's (revision 0002).
    sa.Column("schema_version", sa.Integer, nullable=False, server_default="1"),
)

aliases = sa.Table(
    "aliases",
    _metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.ForeignKeyConstraint(["name", "version"], ["versions.name", "versions.version"]),
)

alias_log = sa.Table(
    "alias_log",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("from_version", sa.Integer),
    sa.Column("to_version", sa.Integer),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("by", sa.String(256), nullable=False),
    sa.Column("reason", sa.Text),
)

meta = sa.Table(
    "meta",
    _metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

# Alembic's own table, made with the others so a new index is born at the newest revision.
alembic_version = sa.Table(
    "alembic_version",
    _metadata,
    sa.Column("version_num", sa.String(32), primary_key=True),
)

_WRITE = "modelkeep_write"
_FIRST_INSERT_RETRIES = 5
_CREATE_LOCK_KEY = 0x6D6B6565  # "mkee": the advisory lock held while creating the tables
_BUSY_TIMEOUT_S = 60.0


def sqlite_url(path: str, *, read_only: bool) -> str:
    """The SQLAlchemy URL of the SQLite index at ``path`` (opened immutable when read-only)."""
    if read_only:
        return f"sqlite:///file:{path}?mode=ro&immutable=1&uri=true"
    return f"sqlite:///{path}"


def _sqlite_engine(url: str) -> Engine:
    # NullPool: a connection per transaction, closed after it; nothing lingers across a
    # fork, and each process's wait for the write lock starts afresh.
    engine = sa.create_engine(
        url, connect_args={"timeout": _BUSY_TIMEOUT_S}, poolclass=sa.pool.NullPool
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transactions away from the sqlite3 module: it would BEGIN lazily (deferred)
        # and a deferred transaction that later writes fails at once instead of waiting.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
            # FULL: a committed registration survives power loss, not only a crash.
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _server_engine(url: str) -> Engine:
    """A database server's engine (PostgreSQL for a team registry).

    ``pool_pre_ping``: a pooled connection is tested before use, so a server restarted
    between two calls costs a reconnect, not an error. The driver is an optional extra.
    """
    from modelkeep._optional import require

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        driver = parsed.get_driver_name()
        module = {"psycopg": "psycopg", "psycopg2": "psycopg2"}.get(driver, driver)
        require("postgres", module, feature="A registry index on PostgreSQL", packages="psycopg")
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=8)


def _revision(connection: Connection) -> str:
    """The schema version of the index on ``connection`` (it has a ``meta`` table)."""
    if sa.inspect(connection).has_table("alembic_version"):
        found = connection.execute(sa.select(alembic_version.c.version_num)).scalar_one_or_none()
        if found is not None:
            return str(found)
    store_format = connection.execute(
        sa.select(meta.c.value).where(meta.c.key == "store_format")
    ).scalar_one_or_none()
    return "0001" if store_format in (None, "1") else f"store format {store_format}"


def _cause(exc: sa.exc.SQLAlchemyError) -> BaseException:
    """The database driver's own error when there is one (SQLAlchemy's text adds a URL)."""
    original = getattr(exc, "orig", None)
    return original if isinstance(original, BaseException) else exc


def _set_wal(dbapi_connection: Any) -> None:
    # Switching to WAL needs a moment alone with the file; while another process creates
    # the index at the same time the switch can report "locked", so try a few times.
    import sqlite3

    for attempt in range(50):
        try:
            dbapi_connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.05)


class SqlStore:
    """The index behind one registry, in a SQL database. ``location`` names it in error
    messages.

    ``create``: make the tables if the database has none (a new index); otherwise an index
    without them is an error, never silently a new empty one. ``before_create`` is called
    first when they are to be made, and may refuse by raising (a team registry whose
    store holds bundles has lost its index: made again, it would read as empty).
    """

    def __init__(
        self,
        url: str,
        *,
        location: str,
        create: bool = True,
        before_create: Callable[[], None] | None = None,
    ) -> None:
        self._setup(url, location)
        #: Whether opening found no registry tables and made them (an empty index).
        self.created = False
        try:
            self._ensure_schema(create, before_create)
        except sa.exc.SQLAlchemyError as exc:
            self._engine.dispose()
            raise RegistryIndexError(location, "opening the index", _cause(exc)) from exc
        except BaseException:
            self._engine.dispose()  # no connection outlives a refused index
            raise

    @classmethod
    def for_migration(cls, url: str, *, location: str) -> SqlStore:
        """The store at ``url`` opened without checking its schema version: only
        :meth:`migrate` and :meth:`revision` may be called on it."""
        store = cls.__new__(cls)
        store._setup(url, location)
        return store

    def _setup(self, url: str, location: str) -> None:
        self.location = location
        self._url = url
        self._server = not url.startswith("sqlite")
        try:
            self._engine = _sqlite_engine(url) if not self._server else _server_engine(url)
        except sa.exc.SQLAlchemyError as exc:
            raise RegistryIndexError(location, "opening the index", _cause(exc)) from exc
        # A store dropped without close() still closes its pooled connections (a server's
        # would otherwise be left to the garbage collector, with a ResourceWarning).
        self._disposer = weakref.finalize(self, self._engine.dispose)

    def close(self) -> None:
        self._disposer()

    # ----------------------------------------------------------------------- transactions

    @contextmanager
    def _read(self, operation: str) -> Iterator[Connection]:
        try:
            with self._engine.connect() as connection, connection.begin():
                yield connection
        except sa.exc.SQLAlchemyError as exc:
            raise RegistryIndexError(self.location, operation, _cause(exc)) from exc

    @contextmanager
    def _write(self, operation: str) -> Iterator[Connection]:
        try:
            with self._engine.connect() as connection:
                connection.execution_options(**{_WRITE: True})
                with connection.begin():
                    yield connection
        except sa.exc.SQLAlchemyError as exc:
            raise RegistryIndexError(self.location, operation, _cause(exc)) from exc

    def _ensure_schema(self, create: bool, before_create: Callable[[], None] | None) -> None:
        with self._engine.connect() as connection, connection.begin():
            if sa.inspect(connection).has_table("meta"):
                revision = _revision(connection)
                if revision == SCHEMA_REVISION:
                    return
                self._refuse_newer(revision)
                if not self._migrates_itself:
                    raise self._version_error(
                        f"index schema version {revision} is older than this modelkeep's "
                        f"{SCHEMA_REVISION}; run `modelkeep registry migrate` to upgrade it "
                        "in place"
                    )
                older = True
            elif not create:
                raise RegistryIndexError(
                    self.location,
                    "opening the index",
                    ValueError("the database holds no registry tables"),
                )
            else:
                older = False
        if older:
            self.migrate()
            return
        if before_create is not None:
            before_create()
        if self._url.startswith("sqlite"):
            with self._engine.connect() as connection:
                _set_wal(connection.connection.dbapi_connection)
        with self._write("creating the index") as connection:
            if self._server:
                # Processes that all find an empty database create the tables one after
                # another (DDL is transactional here; the lock ends with the transaction).
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CREATE_LOCK_KEY})")
            _metadata.create_all(connection, checkfirst=True)
            found = connection.execute(
                sa.select(meta.c.value).where(meta.c.key == "store_format")
            ).scalar_one_or_none()
            if found is None:
                self.created = True
                connection.execute(sa.insert(meta).values(key="store_format", value=STORE_FORMAT))
                connection.execute(sa.insert(alembic_version).values(version_num=SCHEMA_REVISION))
            else:
                self._refuse_newer(_revision(connection))

    @property
    def _migrates_itself(self) -> bool:
        """A writable SQLite index is upgraded when opened (one user, one file); a shared
        server's only by ``modelkeep registry migrate``, run once for everyone."""
        return not self._server and "mode=ro" not in self._url

    def _version_error(self, detail: str) -> RegistryIndexError:
        return RegistryIndexError(self.location, "opening the index", ValueError(detail))

    def _refuse_newer(self, revision: str) -> None:
        if revision not in REVISIONS:
            raise self._version_error(
                f"index schema version {revision} is newer than this modelkeep's "
                f"{SCHEMA_REVISION}; it was written by a later modelkeep release: upgrade "
                "modelkeep to use it"
            )

    def revision(self) -> str:
        """The index's schema version (an Alembic revision id)."""
        with self._read("reading the index's schema version") as connection:
            return _revision(connection)

    def migrate(self) -> tuple[str, str]:
        """Upgrade the index in place to :data:`SCHEMA_REVISION` with Alembic, in one
        transaction; return (the version it had, the version it has). An index of a newer
        modelkeep is refused (:class:`RegistryIndexError` naming both versions)."""
        from alembic import command
        from alembic.config import Config

        with self._write("migrating the index") as connection:
            if self._server:
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CREATE_LOCK_KEY})")
            found = _revision(connection)
            self._refuse_newer(found)
            if found == SCHEMA_REVISION:
                return found, found
            if not sa.inspect(connection).has_table("alembic_version"):
                alembic_version.create(connection)
                connection.execute(sa.insert(alembic_version).values(version_num=found))
            config = Config()
            config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
            config.attributes["connection"] = connection
            command.upgrade(config, SCHEMA_REVISION)
        return found, SCHEMA_REVISION

    # --------------------------------------------------------------------------- versions

    def add_version(
        self, name: str, record: VersionRecord, *, before_commit: Callable[[int], None]
    ) -> int:
        """Assign ``name``'s next version number and insert ``record`` under it, atomically.

        ``before_commit(version)`` runs once the number is taken, before the row is
        inserted; if it raises, nothing is committed.

        On a server two first registrations of a name can both find no counter row; the
        second insert of it then fails on the primary key after the first commits, and the
        whole transaction is tried again (it then finds the row, locked ``FOR UPDATE``).
        Numbers are only taken by a transaction that commits, so a failed registration
        leaves no gap.
        """
        attempt = 1
        while True:
            try:
                return self._add_version(name, record, before_commit)
            except RegistryIndexError as exc:
                raced = self._server and isinstance(exc.__cause__, sa.exc.IntegrityError)
                if not raced or attempt == _FIRST_INSERT_RETRIES:
                    raise
                attempt += 1

    def _add_version(
        self, name: str, record: VersionRecord, before_commit: Callable[[int], None]
    ) -> int:
        with self._write(f"registering a version of {name!r}") as connection:
            counter = connection.execute(
                sa.select(names.c.next_version).where(names.c.name == name).with_for_update()
            ).scalar_one_or_none()
            if counter is None:
                version = 1
                connection.execute(
                    sa.insert(names).values(name=name, next_version=2, created_at=utc_now())
                )
            else:
                version = counter
                connection.execute(
                    sa.update(names).where(names.c.name == name).values(next_version=version + 1)
                )
            before_commit(version)
            connection.execute(
                sa.insert(versions).values(
                    **record.to_row(),
                    name=name,
                    version=version,
                    schema_version=self._next_schema(connection, name, record.schema_hash),
                )
            )
        return version

    def _next_schema(self, connection: Connection, name: str, schema_hash: str) -> int:
        """The feature-schema version of ``name``'s next version (its counter row is
        locked, so no other registration of the name runs meanwhile)."""
        previous = connection.execute(
            sa.select(versions.c.schema_hash, versions.c.schema_version)
            .where(versions.c.name == name)
            .order_by(versions.c.version.desc())
            .limit(1)
        ).first()
        return next_schema_version(
            None if previous is None else (str(previous[0]), int(previous[1])), schema_hash
        )

    def raise_counter(self, name: str, at_least: int) -> None:
        """Make ``name``'s next version number at least ``at_least`` (a copy keeps its
        numbers, and the numbers its source gave and deleted stay given)."""
        with self._write(f"raising the version counter of {name!r}") as connection:
            counter = connection.execute(
                sa.select(names.c.next_version).where(names.c.name == name).with_for_update()
            ).scalar_one_or_none()
            if counter is None:
                connection.execute(
                    sa.insert(names).values(name=name, next_version=at_least, created_at=utc_now())
                )
            elif counter < at_least:
                connection.execute(
                    sa.update(names).where(names.c.name == name).values(next_version=at_least)
                )

    def import_aliases(
        self, name: str, pointers: Mapping[str, int], moves: Sequence[AliasEvent]
    ) -> list[AliasEvent]:
        """Set ``name``'s aliases and append ``moves`` (another registry's log, oldest
        first) to the log under new ids, in one transaction; return the logged moves."""
        logged: list[AliasEvent] = []
        with self._write(f"copying the aliases of {name!r}") as connection:
            for alias, version in sorted(pointers.items()):
                connection.execute(
                    sa.insert(aliases).values(name=name, alias=alias, version=version)
                )
            for move in moves:
                entry = {k: v for k, v in move.to_dict().items() if k != "id"}
                inserted = connection.execute(sa.insert(alias_log).values(**entry))
                key = inserted.inserted_primary_key
                logged.append(AliasEvent(id=int(key[0]) if key is not None else 0, **entry))
        return logged

    def resolve(self, ref: Reference, text: str) -> IndexedVersion:
        """The version ``ref`` points to; :class:`UnknownReferenceError` if none."""
        with self._read(f"resolving {text!r}") as connection:
            numbers = self._numbers(connection, ref.name)
            if not numbers:
                known = connection.execute(sa.select(names.c.name).order_by(names.c.name))
                raise self._unknown(text, "name", ref.name, [str(n) for n in known.scalars()])
            if ref.alias is not None:
                target = connection.execute(
                    sa.select(aliases.c.version).where(
                        aliases.c.name == ref.name, aliases.c.alias == ref.alias
                    )
                ).scalar_one_or_none()
                if target is None:
                    held = sorted(self._aliases(connection, ref.name))
                    raise self._unknown(text, "alias", ref.name, held)
                version = int(target)
            elif ref.version is not None:
                if ref.version not in numbers:
                    raise self._unknown(text, "version", ref.name, [str(n) for n in numbers])
                version = ref.version
            elif ref.schema is not None:
                newest = connection.execute(
                    sa.select(sa.func.max(versions.c.version)).where(
                        versions.c.name == ref.name, versions.c.schema_version == ref.schema
                    )
                ).scalar_one_or_none()
                if newest is None:
                    schemas = connection.execute(
                        sa.select(versions.c.schema_version)
                        .where(versions.c.name == ref.name)
                        .distinct()
                        .order_by(versions.c.schema_version)
                    )
                    held_schemas = [str(n) for n in schemas.scalars()]
                    raise self._unknown(text, "schema version", ref.name, held_schemas)
                version = int(newest)
            else:
                version = numbers[-1]
            return self._row(connection, ref.name, version)

    def versions(
        self, name: str | None = None, *, latest_only: bool = False
    ) -> list[IndexedVersion]:
        """Versions (with their aliases), by name then version."""
        with self._read("listing versions") as connection:
            query = sa.select(versions).order_by(versions.c.name, versions.c.version)
            if name is not None:
                query = query.where(versions.c.name == name)
            if latest_only:
                newest = (
                    sa.select(versions.c.name, sa.func.max(versions.c.version).label("v"))
                    .group_by(versions.c.name)
                    .subquery()
                )
                query = query.join(
                    newest,
                    sa.and_(versions.c.name == newest.c.name, versions.c.version == newest.c.v),
                )
            rows = [r._asdict() for r in connection.execute(query)]
            pointers = connection.execute(
                sa.select(aliases).order_by(aliases.c.name, aliases.c.alias)
            )
            by_version: dict[tuple[str, int], list[str]] = {}
            for pointer in pointers:
                by_version.setdefault((pointer.name, pointer.version), []).append(pointer.alias)
            return [
                _indexed(row, by_version.get((row["name"], row["version"]), [])) for row in rows
            ]

    def names(self) -> list[str]:
        """Every name that has at least one version."""
        with self._read("listing names") as connection:
            query = sa.select(versions.c.name).distinct().order_by(versions.c.name)
            return [str(n) for n in connection.execute(query).scalars()]

    def delete_version(self, name: str, version: int, text: str) -> str:
        """Remove a version's row; return its folder. Refused while an alias points to it."""
        with self._write(f"deleting {text!r}") as connection:
            found = self._row(connection, name, version)
            pointing = connection.execute(
                sa.select(aliases.c.alias).where(
                    aliases.c.name == name, aliases.c.version == version
                )
            ).scalars()
            held = sorted(str(a) for a in pointing)
            if held:
                raise VersionInUseError(text, held)
            connection.execute(
                sa.delete(versions).where(versions.c.name == name, versions.c.version == version)
            )
            return found.record.folder

    # ---------------------------------------------------------------------------- aliases

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int | None,
        *,
        by: str,
        reason: str | None,
        before_commit: Callable[[AliasEvent], None],
    ) -> AliasEvent | None:
        """Point ``alias`` at ``version`` (None: remove it) and log the move, atomically.

        Returns the log entry, or None when the alias already pointed there.
        ``before_commit(entry)`` runs with the logged entry (its id included) before the
        commit; if it raises, nothing is committed.
        """
        text = f"{name}@{alias}"
        with self._write(f"moving alias {text!r}") as connection:
            # One alias move per name at a time: on a server, two moves of a new alias would
            # both find no row and both insert it (SQLite serializes writers anyway).
            connection.execute(
                sa.select(names.c.name).where(names.c.name == name).with_for_update()
            )
            if (
                version is not None
                and not connection.execute(
                    sa.select(versions.c.version).where(
                        versions.c.name == name, versions.c.version == version
                    )
                ).first()
            ):
                numbers = self._numbers(connection, name)
                if not numbers:
                    known = [str(n) for n in connection.execute(sa.select(names.c.name)).scalars()]
                    raise self._unknown(name, "name", name, sorted(known))
                raise self._unknown(f"{name}:{version}", "version", name, [str(n) for n in numbers])
            current = connection.execute(
                sa.select(aliases.c.version)
                .where(aliases.c.name == name, aliases.c.alias == alias)
                .with_for_update()
            ).scalar_one_or_none()
            if current == version:
                if version is None:
                    held = sorted(self._aliases(connection, name))
                    raise self._unknown(text, "alias", name, held)
                return None
            where = sa.and_(aliases.c.name == name, aliases.c.alias == alias)
            if version is None:
                connection.execute(sa.delete(aliases).where(where))
            elif current is None:
                connection.execute(
                    sa.insert(aliases).values(name=name, alias=alias, version=version)
                )
            else:
                connection.execute(sa.update(aliases).where(where).values(version=version))
            entry: dict[str, Any] = {
                "name": name,
                "alias": alias,
                "from_version": current,
                "to_version": version,
                "at": utc_now(),
                "by": by,
                "reason": reason,
            }
            inserted = connection.execute(sa.insert(alias_log).values(**entry))
            key = inserted.inserted_primary_key
            event = AliasEvent(id=int(key[0]) if key is not None else 0, **entry)
            before_commit(event)
            return event

    def aliases(self, name: str) -> dict[str, int]:
        with self._read("listing aliases") as connection:
            return self._aliases(connection, name)

    def history(self, name: str | None, alias: str | None = None) -> list[AliasEvent]:
        """Alias moves for ``name`` (or one alias; every name for None), oldest first."""
        with self._read("reading the alias history") as connection:
            query = sa.select(alias_log)
            if name is not None:
                query = query.where(alias_log.c.name == name)
            if alias is not None:
                query = query.where(alias_log.c.alias == alias)
            query = query.order_by(alias_log.c.id)
            return [AliasEvent.from_dict(r._asdict()) for r in connection.execute(query)]

    # ------------------------------------------------------------------------ consistency

    def counters(self) -> dict[str, int]:
        """Name -> the next version number it will be given."""
        with self._read("reading the version counters") as connection:
            query = sa.select(names.c.name, names.c.next_version)
            return {str(n): int(v) for n, v in connection.execute(query)}

    def is_empty(self) -> bool:
        """Whether the index holds no version and no version counter (a new index, or one
        whose rows were lost)."""
        with self._read("reading the index") as connection:
            for table in (names, versions):
                if connection.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
                    return False
            return True

    def restore(
        self,
        entries: Sequence[IndexedVersion],
        counters: Mapping[str, int],
        pointers: Mapping[tuple[str, str], int],
        moves: Sequence[AliasEvent],
    ) -> None:
        """Fill an empty index in one transaction: versions, next-version counters,
        aliases ``(name, alias) -> version`` and the alias log."""
        with self._write("rebuilding the index") as connection:
            self._fill(connection, entries, counters, pointers, moves)

    def replace(self, build: Callable[[Mapping[str, int]], Restoration]) -> Restoration:
        """Replace every version, counter, alias and alias move in one transaction (a
        team index's ``rebuild()``); return what was written.

        ``build(counters)`` is called inside the transaction with the index's current
        counters and returns the rows to write. On a server the tables are locked against
        writers (``EXCLUSIVE``: readers go on, and see the old rows until the commit)
        before ``build`` runs, so what it reads from the artifact store includes every
        registration that committed before, and none commits until the new rows are in.
        The alias log's id sequence is moved past the highest id written.
        """
        with self._write("rebuilding the index") as connection:
            if self._server:
                connection.exec_driver_sql(
                    "LOCK TABLE names, versions, aliases, alias_log IN EXCLUSIVE MODE"
                )
            current = {
                str(n): int(v)
                for n, v in connection.execute(sa.select(names.c.name, names.c.next_version))
            }
            restoration = build(current)
            for table in (alias_log, aliases, versions, names):
                connection.execute(sa.delete(table))
            self._fill(connection, *restoration)
            if self._server:
                connection.exec_driver_sql(
                    "SELECT setval(pg_get_serial_sequence('alias_log', 'id'), "
                    "COALESCE((SELECT MAX(id) FROM alias_log), 0) + 1, false)"
                )
        return restoration

    def _fill(
        self,
        connection: Connection,
        entries: Sequence[IndexedVersion],
        counters: Mapping[str, int],
        pointers: Mapping[tuple[str, str], int],
        moves: Sequence[AliasEvent],
    ) -> None:
        for name, next_version in sorted(counters.items()):
            connection.execute(
                sa.insert(names).values(name=name, next_version=next_version, created_at=utc_now())
            )
        for indexed in entries:
            connection.execute(
                sa.insert(versions).values(
                    **indexed.record.to_row(),
                    name=indexed.name,
                    version=indexed.version,
                    schema_version=indexed.schema_version,
                )
            )
        for (name, alias), version in sorted(pointers.items()):
            connection.execute(sa.insert(aliases).values(name=name, alias=alias, version=version))
        for move in moves:
            connection.execute(sa.insert(alias_log).values(**move.to_dict()))

    def folders(self) -> dict[str, tuple[str, str]]:
        """Folder id -> (``name:version``, manifest SHA-256) for every indexed version."""
        with self._read("listing folders") as connection:
            query = sa.select(
                versions.c.folder, versions.c.name, versions.c.version, versions.c.manifest_sha256
            )
            return {
                r.folder: (f"{r.name}:{r.version}", r.manifest_sha256)
                for r in connection.execute(query)
            }

    def consistency(self) -> list[Problem]:
        """Problems inside the index itself: the database's own integrity check, version
        counters, aliases pointing nowhere and an alias log out of step with the aliases."""
        with self._read("checking the index") as connection:
            return [
                *self._corruption(connection),
                *self._counter_problems(connection),
                *self._dangling_aliases(connection),
                *self._alias_log_problems(connection),
            ]

    def _corruption(self, connection: Connection) -> list[Problem]:
        if not self._url.startswith("sqlite"):
            return []
        return [
            Problem("index_corrupt", self.location, str(result))
            for (result,) in connection.exec_driver_sql("PRAGMA quick_check")
            if result != "ok"
        ]

    def _counter_problems(self, connection: Connection) -> list[Problem]:
        counters = {
            str(n): int(v)
            for n, v in connection.execute(sa.select(names.c.name, names.c.next_version))
        }
        newest = connection.execute(
            sa.select(versions.c.name, sa.func.max(versions.c.version)).group_by(versions.c.name)
        )
        return [
            problem
            for name, top in newest
            if (problem := counter_problem(name, counters.get(name), top)) is not None
        ]

    def _dangling_aliases(self, connection: Connection) -> list[Problem]:
        dangling = connection.execute(
            sa.select(aliases.c.name, aliases.c.alias, aliases.c.version)
            .select_from(
                aliases.outerjoin(
                    versions,
                    sa.and_(
                        aliases.c.name == versions.c.name,
                        aliases.c.version == versions.c.version,
                    ),
                )
            )
            .where(versions.c.folder.is_(None))
        )
        return [
            Problem("dangling_alias", f"{name}@{alias}", f"points to missing version {version}")
            for name, alias, version in dangling
        ]

    def _alias_log_problems(self, connection: Connection) -> list[Problem]:
        current = {(r.name, r.alias): r.version for r in connection.execute(sa.select(aliases))}
        query = sa.select(alias_log).order_by(alias_log.c.id)
        moves = [AliasEvent.from_dict(r._asdict()) for r in connection.execute(query)]
        return alias_log_problems(current, moves)

    # ---------------------------------------------------------------------------- helpers

    def _numbers(self, connection: Connection, name: str) -> list[int]:
        query = sa.select(versions.c.version).where(versions.c.name == name)
        return sorted(int(v) for v in connection.execute(query).scalars())

    def _aliases(self, connection: Connection, name: str) -> dict[str, int]:
        query = sa.select(aliases.c.alias, aliases.c.version).where(aliases.c.name == name)
        return {str(a): int(v) for a, v in connection.execute(query.order_by(aliases.c.alias))}

    def _row(self, connection: Connection, name: str, version: int) -> IndexedVersion:
        row = connection.execute(
            sa.select(versions).where(versions.c.name == name, versions.c.version == version)
        ).first()
        if row is None:
            numbers = self._numbers(connection, name)
            raise self._unknown(f"{name}:{version}", "version", name, [str(n) for n in numbers])
        pointing = connection.execute(
            sa.select(aliases.c.alias)
            .where(aliases.c.name == name, aliases.c.version == version)
            .order_by(aliases.c.alias)
        )
        return _indexed(row._asdict(), [str(a) for a in pointing.scalars()])

    def _unknown(self, text: str, kind: str, name: str, known: list[str]) -> UnknownReferenceError:
        return UnknownReferenceError(
            text, kind=kind, name=name, registry=self.location, known=known
        )


#: What ``SqlStore.replace`` writes: versions, next-version counters, aliases
#: ``(name, alias) -> version`` and the alias log.
Restoration = tuple[
    Sequence[IndexedVersion],
    Mapping[str, int],
    Mapping[tuple[str, str], int],
    Sequence[AliasEvent],
]


def _indexed(row: Mapping[str, Any], pointing: Sequence[str]) -> IndexedVersion:
    return IndexedVersion(
        name=str(row["name"]),
        version=int(row["version"]),
        record=VersionRecord.from_row(row),
        aliases=tuple(pointing),
        schema_version=int(row["schema_version"]),
    )
