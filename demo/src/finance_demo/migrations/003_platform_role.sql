-- Role of the demo platform's services (finance-demo platform): least privilege for what its
-- handlers write. Rows are inserted and moved to their final status, never deleted; no DDL.
-- UPDATE is granted per column, so a handler cannot rewrite amounts, ids or the xid columns
-- (those are set by the column defaults and the triggers of 001). No password here: the
-- deployment sets one from its secret file (ALTER ROLE finance_platform PASSWORD ...).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'finance_platform') THEN
        CREATE ROLE finance_platform LOGIN;
    END IF;
END
$$;

-- Four services with a pool of four connections each, bounded statements, and no transaction
-- left idle holding locks.
ALTER ROLE finance_platform NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    CONNECTION LIMIT 20;
ALTER ROLE finance_platform SET statement_timeout = '5s';
ALTER ROLE finance_platform SET idle_in_transaction_session_timeout = '30s';

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM finance_platform;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM finance_platform;
GRANT USAGE ON SCHEMA public TO finance_platform;

GRANT SELECT, INSERT ON users, subscriptions, payments, refunds, signals, portfolios, positions,
    orders, trades TO finance_platform;
-- The trading service's end-of-day close adds each ended day's valuation snapshots.
GRANT SELECT, INSERT ON portfolio_daily_snapshots TO finance_platform;
GRANT UPDATE (status, last_active_at, churned_at) ON users TO finance_platform;
GRANT UPDATE (status, canceled_at) ON subscriptions TO finance_platform;
GRANT UPDATE (status) ON payments TO finance_platform;
GRANT UPDATE (status, outcome, closed_at) ON signals TO finance_platform;
GRANT UPDATE (status) ON orders TO finance_platform;
GRANT UPDATE (status, closed_at) ON positions TO finance_platform;
-- nextval() for the bigserial ids of the tables it inserts into.
GRANT USAGE ON SEQUENCE users_id_seq, subscriptions_id_seq, payments_id_seq, refunds_id_seq,
    signals_id_seq, portfolios_id_seq, positions_id_seq, orders_id_seq, trades_id_seq
    TO finance_platform;
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO finance_platform', current_database());
END
$$;
