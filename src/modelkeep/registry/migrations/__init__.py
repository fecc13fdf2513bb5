"""Alembic migrations of the registry's index (SQLite and PostgreSQL alike).

``store.SqlStore.migrate`` runs them (``modelkeep registry migrate``); there is no
``alembic.ini``: the configuration is built in code and handed the store's connection.
Revision ids are the index's schema versions, in order; ``store.REVISIONS`` lists them.
"""
