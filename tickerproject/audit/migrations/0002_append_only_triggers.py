"""Triggers that refuse changing or deleting audit events, whatever client writes to the database.

Django's own SET_NULL (a deleted user or content type) is the one UPDATE let through: it may only
null ``actor_id`` or ``target_type_id``. SQLite refuses UPDATE only: ``flush`` (and every test that runs
outside a transaction) empties tables with DELETE there, while PostgreSQL's flush uses TRUNCATE, which
row triggers do not see. Append-only against the database owner needs privileges (README "Audit log").
A column added to AuditEvent must be added to the SQLite trigger's list.
"""

from django.db import migrations

POSTGRESQL_FORWARD = """
CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (NEW.actor_id IS NULL OR NEW.actor_id = OLD.actor_id)
       AND (NEW.target_type_id IS NULL OR NEW.target_type_id = OLD.target_type_id)
       AND to_jsonb(NEW) - 'actor_id' - 'target_type_id' = to_jsonb(OLD) - 'actor_id' - 'target_type_id'
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END
$$;
--
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
"""
POSTGRESQL_REVERSE = """
DROP TRIGGER audit_event_append_only ON audit_auditevent;
--
DROP FUNCTION audit_event_append_only();
"""

SQLITE_FORWARD = """
CREATE TRIGGER audit_event_append_only BEFORE UPDATE ON audit_auditevent
WHEN NOT (
    NEW.id IS OLD.id AND NEW.at IS OLD.at AND NEW.action IS OLD.action
    AND NEW.actor_username IS OLD.actor_username AND NEW.actor_process IS OLD.actor_process
    AND NEW.client_ip IS OLD.client_ip AND NEW.target_id IS OLD.target_id
    AND NEW.target_repr IS OLD.target_repr AND NEW.details IS OLD.details
    AND (NEW.actor_id IS NULL OR NEW.actor_id IS OLD.actor_id)
    AND (NEW.target_type_id IS NULL OR NEW.target_type_id IS OLD.target_type_id)
)
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only: UPDATE refused');
END;
"""
SQLITE_REVERSE = "DROP TRIGGER audit_event_append_only;"

TRIGGERS = {"postgresql": (POSTGRESQL_FORWARD, POSTGRESQL_REVERSE), "sqlite": (SQLITE_FORWARD, SQLITE_REVERSE)}


def _run(schema_editor, sql_index):
    sql = TRIGGERS.get(schema_editor.connection.vendor)
    if sql is None:  # another backend keeps the ORM's refusal only
        return
    for statement in sql[sql_index].split("\n--\n"):
        schema_editor.execute(statement, params=None)


def forward(apps, schema_editor):
    _run(schema_editor, 0)


def reverse(apps, schema_editor):
    _run(schema_editor, 1)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(forward, reverse, elidable=False)]
