-- Read-only role for the business-metric exporters (least privilege).
-- No password is set here: the deployment sets one from its secret file
-- (ALTER ROLE finance_exporter PASSWORD ...), so none is ever committed.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'finance_exporter') THEN
        CREATE ROLE finance_exporter LOGIN;
    END IF;
END
$$;

-- Few connections (each exporter keeps one), read-only by default, bounded statements, and no
-- transaction left idle holding back vacuum.
ALTER ROLE finance_exporter NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION CONNECTION LIMIT 10;
ALTER ROLE finance_exporter SET default_transaction_read_only = on;
ALTER ROLE finance_exporter SET statement_timeout = '30s';
ALTER ROLE finance_exporter SET idle_in_transaction_session_timeout = '60s';

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM finance_exporter;
GRANT USAGE ON SCHEMA public TO finance_exporter;
GRANT SELECT ON users, subscriptions, payments, refunds, signals, model_evaluations, portfolios,
    positions, portfolio_daily_snapshots, orders, trades TO finance_exporter;
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO finance_exporter', current_database());
END
$$;
