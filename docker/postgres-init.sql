-- One PostgreSQL database per Grassroots service (and the write services' key stores, kept
-- apart from their logs for crypto-shredding). The postgres image runs this file with psql as
-- POSTGRES_USER on the first start of an empty data volume. It is idempotent, so after an
-- upgrade that adds a service it can be run again on an existing volume:
--   docker compose exec -T postgres psql -U grassroots -d grassroots < docker/postgres-init.sql
-- A new service: add its line here, with the same name as in its *_DATABASE_URL in
-- docker-compose.yml (tests/unit/test_compose.py checks that they agree).

SELECT 'CREATE DATABASE visits OWNER grassroots'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'visits')\gexec

SELECT 'CREATE DATABASE visits_keys OWNER grassroots'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'visits_keys')\gexec

SELECT 'CREATE DATABASE cases OWNER grassroots'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'cases')\gexec

SELECT 'CREATE DATABASE cases_keys OWNER grassroots'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'cases_keys')\gexec

SELECT 'CREATE DATABASE compliance OWNER grassroots'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'compliance')\gexec

SELECT 'CREATE DATABASE caseboard OWNER grassroots'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'caseboard')\gexec

SELECT 'CREATE DATABASE gateway OWNER grassroots'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'gateway')\gexec
