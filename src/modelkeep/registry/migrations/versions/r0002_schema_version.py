"""The feature-schema version of each version (store format 2).

``versions.schema_version`` starts at 1 for a name's first version and goes up by one
whenever a version's feature schema (``schema_hash``) differs from the version before it;
existing rows are numbered that way, oldest first.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_versions = sa.table(
    "versions",
    sa.column("name", sa.String),
    sa.column("version", sa.Integer),
    sa.column("schema_hash", sa.String),
    sa.column("schema_version", sa.Integer),
)
_meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.String))


def upgrade() -> None:
    op.add_column(
        "versions",
        sa.Column("schema_version", sa.Integer, nullable=False, server_default="1"),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_versions.c.name, _versions.c.version, _versions.c.schema_hash).order_by(
            _versions.c.name, _versions.c.version
        )
    ).all()
    previous: dict[str, tuple[str, int]] = {}
    for name, version, schema_hash in rows:
        last = previous.get(name)
        number = 1 if last is None else last[1] + (last[0] != schema_hash)
        previous[name] = (schema_hash, number)
        if number != 1:
            connection.execute(
                sa.update(_versions)
                .where(_versions.c.name == name, _versions.c.version == version)
                .values(schema_version=number)
            )
    connection.execute(sa.update(_meta).where(_meta.c.key == "store_format").values(value="2"))


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("schema_version")
    op.get_bind().execute(sa.update(_meta).where(_meta.c.key == "store_format").values(value="1"))
