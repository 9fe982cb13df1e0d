#!/bin/sh
# Temporal's PostgreSQL schema, the way an operator sets it up: the `temporal` and `temporal_visibility` databases
# created, then brought to the schema version of this Temporal release. Safe to run again: an existing database is
# kept, and update-schema applies only the versions it lacks (run it after every Temporal upgrade).
#
# The SQL tool's own variables: SQL_PLUGIN (postgres12), SQL_HOST, SQL_PORT, SQL_USER, SQL_PASSWORD.
# TEMPORAL_SCHEMA_DIR: the release's schema/postgresql/v12 (in the admin-tools image: /etc/temporal/schema/postgresql/v12).
# TEMPORAL_SQL_TOOL: the tool (default: temporal-sql-tool, as the admin-tools image has it).
# Used as it is by docker-compose.yml (temporal-schema) and by the topology test.
set -eu
tool=${TEMPORAL_SQL_TOOL:-temporal-sql-tool}
schema=${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}
export SQL_PLUGIN="${SQL_PLUGIN:-postgres12}"

for pair in temporal:temporal temporal_visibility:visibility; do
  db=${pair%%:*}
  dir=$schema/${pair#*:}/versioned
  [ -d "$dir" ] || { echo "setup-schema: no schema at $dir (set TEMPORAL_SCHEMA_DIR)" >&2; exit 1; }
  if ! out=$("$tool" --db "$db" create-database 2>&1); then
    echo "$out" | grep -qi 'already exists' || { echo "$out" >&2; exit 1; }
    echo "setup-schema: database $db exists"
  fi
  # Version 0.0 creates the schema bookkeeping only where it is missing; update-schema then applies what is new.
  SQL_DATABASE=$db "$tool" setup-schema -v 0.0 >/dev/null 2>&1 || true
  SQL_DATABASE=$db "$tool" update-schema -d "$dir"
  echo "setup-schema: $db is at the schema of $dir"
done
