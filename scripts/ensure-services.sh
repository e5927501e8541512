#!/usr/bin/env bash
# Make sure the PostgreSQL server the integration suite runs against is up (it runs every
# integration test on SQLite and on PostgreSQL).
set -euo pipefail
# A SQLite-only run (STRATUM_TEST_BACKENDS=sqlite) needs no PostgreSQL.
case ",${STRATUM_TEST_BACKENDS:-sqlite,postgresql}," in
  *,postgresql,*) ;;
  *) exit 0 ;;
esac
host=${STRATUM_PG_HOST:-127.0.0.1}
if pg_isready -q -h "$host" -p 5432 2>/dev/null; then
  exit 0
fi
echo "PostgreSQL is not running; starting it" >&2
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
else
  echo "PostgreSQL is not installed here; install it (apt-get install postgresql) or set" >&2
  echo "STRATUM_TEST_BACKENDS=sqlite to run the suite on SQLite only." >&2
  exit 1
fi
for _ in $(seq 1 30); do
  pg_isready -q -h "$host" -p 5432 && exit 0
  sleep 1
done
echo "PostgreSQL did not become ready" >&2
exit 1
