"""The ordered schema migrations (numbered `@migration` functions, as in simonw/llm) and the code that applies them.

Each migration is a function `mNNN_name(dialect) -> statements`: the dialect supplies the few type names that
differ between SQLite and PostgreSQL. Applied versions are recorded in `schema_migrations`; each migration runs
in its own transaction together with its record, and on PostgreSQL under an advisory lock, so replicas starting
at once migrate one after the other and a failed migration leaves nothing behind.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.core.ports import utc_now
from bot.store.drivers import Dialect, Driver

log = logging.getLogger(__name__)

Statements = Sequence[str]


@dataclass(frozen=True)
class Migration:
    """One schema change: its number, its name and the statements to run for a dialect."""

    version: int
    name: str
    statements: Callable[[Dialect], Statements]


MIGRATIONS: list[Migration] = []

_NAME = re.compile(r"m(\d{3,})_(\w+)")


def migration(fn: Callable[[Dialect], Statements]) -> Callable[[Dialect], Statements]:
    """Register `mNNN_name` as migration NNN; numbers must increase in the order they are defined."""
    match = _NAME.fullmatch(fn.__name__)
    if match is None:
        raise ValueError(f"a migration is named mNNN_what_it_does, not {fn.__name__}")
    version = int(match.group(1))
    if MIGRATIONS and version <= MIGRATIONS[-1].version:
        raise ValueError(f"migration {fn.__name__} must be numbered after {MIGRATIONS[-1].version}")
    MIGRATIONS.append(Migration(version, match.group(2), fn))
    return fn


@migration
def m001_initial(d: Dialect) -> Statements:
    """Subscriptions, chat settings, the delivery log and what each subscription has been sent."""
    return [
        # thread_id 0 stands for "no topic": a NULL would make UNIQUE(chat_id, thread_id) let duplicates in.
        f"""
        CREATE TABLE subscriptions (
            id {d.id_column},
            chat_id {d.bigint} NOT NULL,
            thread_id {d.bigint} NOT NULL DEFAULT 0,
            chat_kind TEXT NOT NULL,
            cadence TEXT NOT NULL,
            weekday INTEGER,
            at_time TEXT NOT NULL,
            timezone TEXT NOT NULL,
            sections TEXT NOT NULL DEFAULT '',
            spotlight BOOLEAN NOT NULL DEFAULT TRUE,
            active BOOLEAN NOT NULL DEFAULT TRUE,
            created_at {d.timestamp} NOT NULL,
            updated_at {d.timestamp} NOT NULL,
            next_due_at {d.timestamp} NOT NULL,
            deactivated_reason TEXT,
            UNIQUE (chat_id, thread_id)
        )
        """,
        # The scheduler's scan: due subscriptions in next_due_at order, as an index range scan.
        "CREATE INDEX subscriptions_due ON subscriptions (next_due_at) WHERE active",
        f"""
        CREATE TABLE chat_settings (
            chat_id {d.bigint} PRIMARY KEY,
            quiet_start TEXT,
            quiet_end TEXT,
            quiet_timezone TEXT
        )
        """,
        f"""
        CREATE TABLE deliveries (
            id {d.id_column},
            subscription_id {d.bigint} NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('digest', 'broadcast')),
            period {d.timestamp} NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            parts_sent INTEGER NOT NULL DEFAULT 0,
            payload TEXT,
            worker TEXT,
            lease_until {d.timestamp},
            not_before {d.timestamp},
            in_flight_at_crash BOOLEAN NOT NULL DEFAULT FALSE,
            last_error TEXT,
            created_at {d.timestamp} NOT NULL,
            updated_at {d.timestamp} NOT NULL,
            sent_at {d.timestamp},
            UNIQUE (subscription_id, kind, period)
        )
        """,
        # Claiming walks only the open rows, in id order, however long the log of sent ones grows.
        "CREATE INDEX deliveries_open ON deliveries (id) WHERE status IN ('pending', 'sending')",
        # /status asks for the latest digest period and its outcome.
        "CREATE INDEX deliveries_period ON deliveries (kind, period)",
        f"""
        CREATE TABLE sent_items (
            subscription_id {d.bigint} NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('update', 'initiative')),
            item_key TEXT NOT NULL,
            sent_at {d.timestamp} NOT NULL,
            PRIMARY KEY (subscription_id, kind, item_key)
        )
        """,
    ]


@migration
def m002_audit_log(d: Dialect) -> Statements:
    """The admins' audit log: who did what, when."""
    return [
        f"""
        CREATE TABLE audit_log (
            id {d.id_column},
            at {d.timestamp} NOT NULL,
            actor_id {d.bigint},
            action TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        )
        """,
    ]


@migration
def m003_delivery_started(d: Dialect) -> Statements:
    """Whether a claimed delivery's send had begun: only those may repeat after a crash."""
    return ["ALTER TABLE deliveries ADD COLUMN started BOOLEAN NOT NULL DEFAULT FALSE"]


@migration
def m004_replicas(d: Dialect) -> Statements:
    """What replicas on one PostgreSQL share: the sending pace (cluster.py) and the content (snapshots.py)."""
    return [
        f"CREATE TABLE send_pacer (name TEXT PRIMARY KEY, next_at {d.timestamp} NOT NULL)",
        f"""
        CREATE TABLE content_snapshot (
            name TEXT PRIMARY KEY,
            version TEXT NOT NULL,
            base_version TEXT NOT NULL,
            files TEXT NOT NULL,
            published_by TEXT NOT NULL,
            published_at {d.timestamp} NOT NULL
        )
        """,
    ]


@migration
def m005_broadcast_drafts(d: Dialect) -> Statements:
    """Broadcasts waiting for an admin's confirmation, so any replica can confirm them."""
    return [
        f"""
        CREATE TABLE broadcast_drafts (
            id TEXT PRIMARY KEY,
            text TEXT NOT NULL,
            created_by {d.bigint},
            created_at {d.timestamp} NOT NULL
        )
        """,
    ]


@migration
def m006_finished_deliveries(d: Dialect) -> Statements:
    """Finished deliveries by age, so the retention sweep finds the old ones without walking the table."""
    return ["CREATE INDEX deliveries_finished ON deliveries (updated_at) WHERE status IN ('sent', 'failed')"]


@migration
def m007_incoming_updates(d: Dialect) -> Statements:
    """The ids of incoming webhook updates, claimed and then marked done, so a redelivered one is handled once."""
    return [
        f"""
        CREATE TABLE incoming_updates (
            update_id {d.bigint} PRIMARY KEY,
            state TEXT NOT NULL CHECK (state IN ('handling', 'done')),
            worker TEXT,
            lease_until {d.timestamp},
            attempts INTEGER NOT NULL DEFAULT 1,
            received_at {d.timestamp} NOT NULL
        )
        """,
        # The retention sweep deletes the oldest ids without walking the table.
        "CREATE INDEX incoming_updates_received ON incoming_updates (received_at)",
    ]


@migration
def m008_candidates(d: Dialect) -> Statements:
    """The review queue of items found on official sources, and each source's polling state."""
    return [
        # link is UNIQUE in every state: a rejected, published or expired item is never queued again.
        f"""
        CREATE TABLE candidates (
            id {d.id_column},
            source_id TEXT NOT NULL,
            title TEXT NOT NULL,
            link TEXT NOT NULL UNIQUE,
            published {d.timestamp},
            excerpt TEXT NOT NULL DEFAULT '',
            language TEXT NOT NULL,
            sections TEXT NOT NULL DEFAULT '',
            title_key TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'published', 'rejected', 'expired')),
            found_at {d.timestamp} NOT NULL,
            decided_by {d.bigint},
            decided_at {d.timestamp},
            draft_title TEXT NOT NULL DEFAULT '',
            draft_summary TEXT NOT NULL DEFAULT '',
            draft_sections TEXT
        )
        """,
        # One open candidate per story: the same press release from two sources, or in English and Chinese, is
        # offered once. A constraint rather than a check, so concurrent inserts from two replicas cannot both win.
        "CREATE UNIQUE INDEX candidates_open_title ON candidates (title_key) WHERE state = 'new' AND title_key <> ''",
        # /review's oldest-open query walks only the open rows, in id order.
        "CREATE INDEX candidates_open ON candidates (id) WHERE state = 'new'",
        # The expiry sweep finds the old open rows without walking the table.
        "CREATE INDEX candidates_open_found ON candidates (found_at) WHERE state = 'new'",
        f"""
        CREATE TABLE source_states (
            source_id TEXT PRIMARY KEY,
            etag TEXT,
            last_modified TEXT,
            last_poll_at {d.timestamp},
            last_success_at {d.timestamp},
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            next_poll_at {d.timestamp},
            items_seen {d.bigint} NOT NULL DEFAULT 0,
            errors {d.bigint} NOT NULL DEFAULT 0,
            last_error TEXT
        )
        """,
    ]


@migration
def m009_prompts(d: Dialect) -> Statements:
    """The prompts the bot sent (Edit's "reply with your words"), so that a reply to one is understood on any
    replica and after a restart."""
    return [
        f"""
        CREATE TABLE prompts (
            chat_id {d.bigint} NOT NULL,
            message_id {d.bigint} NOT NULL,
            action TEXT NOT NULL,
            user_id {d.bigint},
            asked_at {d.timestamp} NOT NULL,
            PRIMARY KEY (chat_id, message_id)
        )
        """,
        # The retention sweep deletes the oldest prompts without walking the table.
        "CREATE INDEX prompts_asked ON prompts (asked_at)",
    ]


@migration
def m010_chat_language(d: Dialect) -> Statements:
    """Each chat's language ("en", "zh-Hant"): NULL until its first contact sets it from the user's language_code.

    Numbered 010: 009 is taken by a change developed at the same time.
    """
    return ["ALTER TABLE chat_settings ADD COLUMN language TEXT"]


@migration
def m011_chat_addresses(d: Dialect) -> Statements:
    """Chats become platform-qualified addresses: subscriptions.chat_id -100123 becomes chat 'telegram:-100123', and
    chat_settings and prompts the same; every subscription, delivery, history, settings and prompt row is kept."""
    tables = ("subscriptions", "chat_settings", "prompts")
    if d.name == "postgres":
        return [
            f"ALTER TABLE {table} ALTER COLUMN chat_id TYPE TEXT USING '{TELEGRAM_PREFIX}' || chat_id::TEXT"
            for table in tables
        ] + [f"ALTER TABLE {table} RENAME COLUMN chat_id TO chat" for table in tables]
    # SQLite cannot change a column's type in place, so the tables are rebuilt. Dropping `subscriptions` while
    # deliveries and sent_items still refer to it would cascade-delete them (foreign keys are on), so those two are
    # rebuilt with it, children dropped first; renaming the new tables rewrites their references to the final names.
    return [
        f"""
        CREATE TABLE subscriptions_new (
            id {d.id_column},
            chat TEXT NOT NULL,
            thread_id {d.bigint} NOT NULL DEFAULT 0,
            chat_kind TEXT NOT NULL,
            cadence TEXT NOT NULL,
            weekday INTEGER,
            at_time TEXT NOT NULL,
            timezone TEXT NOT NULL,
            sections TEXT NOT NULL DEFAULT '',
            spotlight BOOLEAN NOT NULL DEFAULT TRUE,
            active BOOLEAN NOT NULL DEFAULT TRUE,
            created_at {d.timestamp} NOT NULL,
            updated_at {d.timestamp} NOT NULL,
            next_due_at {d.timestamp} NOT NULL,
            deactivated_reason TEXT,
            UNIQUE (chat, thread_id)
        )
        """,
        f"INSERT INTO subscriptions_new SELECT id, '{TELEGRAM_PREFIX}' || chat_id, {_REST_OF_SUBSCRIPTION}"
        " FROM subscriptions",
        f"""
        CREATE TABLE deliveries_new (
            id {d.id_column},
            subscription_id {d.bigint} NOT NULL REFERENCES subscriptions_new (id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('digest', 'broadcast')),
            period {d.timestamp} NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            parts_sent INTEGER NOT NULL DEFAULT 0,
            payload TEXT,
            worker TEXT,
            lease_until {d.timestamp},
            not_before {d.timestamp},
            in_flight_at_crash BOOLEAN NOT NULL DEFAULT FALSE,
            last_error TEXT,
            created_at {d.timestamp} NOT NULL,
            updated_at {d.timestamp} NOT NULL,
            sent_at {d.timestamp},
            started BOOLEAN NOT NULL DEFAULT FALSE,
            UNIQUE (subscription_id, kind, period)
        )
        """,
        f"INSERT INTO deliveries_new SELECT {_DELIVERY_COLUMNS} FROM deliveries",
        f"""
        CREATE TABLE sent_items_new (
            subscription_id {d.bigint} NOT NULL REFERENCES subscriptions_new (id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('update', 'initiative')),
            item_key TEXT NOT NULL,
            sent_at {d.timestamp} NOT NULL,
            PRIMARY KEY (subscription_id, kind, item_key)
        )
        """,
        "INSERT INTO sent_items_new SELECT subscription_id, kind, item_key, sent_at FROM sent_items",
        """
        CREATE TABLE chat_settings_new (
            chat TEXT PRIMARY KEY,
            quiet_start TEXT,
            quiet_end TEXT,
            quiet_timezone TEXT,
            language TEXT
        )
        """,
        f"INSERT INTO chat_settings_new SELECT '{TELEGRAM_PREFIX}' || chat_id, quiet_start, quiet_end, quiet_timezone,"
        " language FROM chat_settings",
        f"""
        CREATE TABLE prompts_new (
            chat TEXT NOT NULL,
            message_id {d.bigint} NOT NULL,
            action TEXT NOT NULL,
            user_id {d.bigint},
            asked_at {d.timestamp} NOT NULL,
            PRIMARY KEY (chat, message_id)
        )
        """,
        f"INSERT INTO prompts_new SELECT '{TELEGRAM_PREFIX}' || chat_id, message_id, action, user_id, asked_at"
        " FROM prompts",
        "DROP TABLE sent_items",
        "DROP TABLE deliveries",
        "DROP TABLE subscriptions",
        "DROP TABLE chat_settings",
        "DROP TABLE prompts",
        "ALTER TABLE subscriptions_new RENAME TO subscriptions",
        "ALTER TABLE deliveries_new RENAME TO deliveries",
        "ALTER TABLE sent_items_new RENAME TO sent_items",
        "ALTER TABLE chat_settings_new RENAME TO chat_settings",
        "ALTER TABLE prompts_new RENAME TO prompts",
        # The indexes went with the old tables; the hot paths need them back under the same names (INDEXED BY).
        "CREATE INDEX subscriptions_due ON subscriptions (next_due_at) WHERE active",
        "CREATE INDEX deliveries_open ON deliveries (id) WHERE status IN ('pending', 'sending')",
        "CREATE INDEX deliveries_period ON deliveries (kind, period)",
        "CREATE INDEX deliveries_finished ON deliveries (updated_at) WHERE status IN ('sent', 'failed')",
        "CREATE INDEX prompts_asked ON prompts (asked_at)",
    ]


TELEGRAM_PREFIX = "telegram:"
_REST_OF_SUBSCRIPTION = (
    "thread_id, chat_kind, cadence, weekday, at_time, timezone, sections, spotlight, active, created_at, updated_at,"
    " next_due_at, deactivated_reason"
)
_DELIVERY_COLUMNS = (
    "id, subscription_id, kind, period, status, attempts, parts_sent, payload, worker, lease_until, not_before,"
    " in_flight_at_crash, last_error, created_at, updated_at, sent_at, started"
)


def _create_table(d: Dialect) -> str:
    return f"""
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at {d.timestamp} NOT NULL
        )
    """


async def apply_migrations(driver: Driver, migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
    """Apply the migrations not yet recorded, in order; returns those applied now (none when up to date)."""
    applied: list[Migration] = []
    async with driver.migration_lock():
        async with driver.transaction() as tx:
            await tx.execute(_create_table(driver.dialect))
        for step in migrations:
            async with driver.transaction() as tx:
                # Checked inside the transaction: another process may have applied it while we waited.
                if await tx.fetchone("SELECT 1 FROM schema_migrations WHERE version = ?", (step.version,)):
                    continue
                for statement in step.statements(driver.dialect):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (step.version, step.name, utc_now()),
                )
            log.info("applied migration %03d_%s", step.version, step.name)
            applied.append(step)
        known = max((step.version for step in migrations), default=0)
        async with driver.transaction(write=False) as tx:
            newest = await tx.fetchone("SELECT MAX(version) FROM schema_migrations")
        if newest and newest[0] is not None and newest[0] > known:
            log.warning("database schema is at version %s, newer than this code knows (%s)", newest[0], known)
    return applied


async def applied_migrations(driver: Driver) -> list[tuple[int, str, datetime]]:
    """The recorded migrations: (version, name, applied_at), oldest first."""
    async with driver.transaction(write=False) as tx:
        rows = await tx.fetchall("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
    return [(int(version), str(name), driver.decode_time(at)) for version, name, at in rows]
