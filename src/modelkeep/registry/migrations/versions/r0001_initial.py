"""The index as modelkeep 0.1 wrote it (store format 1): names, versions, aliases, the
alias log and meta. Indexes from before migrations existed are stamped with this revision.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "names",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("next_version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "versions",
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
    )
    op.create_table(
        "aliases",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(["name", "version"], ["versions.name", "versions.version"]),
    )
    op.create_table(
        "alias_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("by", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text),
    )
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.bulk_insert(meta, [{"key": "store_format", "value": "1"}])


def downgrade() -> None:
    for table in ("alias_log", "aliases", "versions", "names", "meta"):
        op.drop_table(table)
