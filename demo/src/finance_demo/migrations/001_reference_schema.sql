-- Reference data model of the AI Finance platform: the tables the exporters read.
-- The data contract (docs/data-contract.md) says which columns and indexes each exporter needs.
--
-- Counting columns (xid8): a monotonic total is folded incrementally above a watermark that is the
-- oldest transaction still running (pg_snapshot_xmin). A row is counted when the transaction that
-- made it countable is below that watermark, so a transaction held open while later ones commit is
-- never skipped and never counted twice. Each counted fact therefore records the id of the
-- transaction that made it final: inserts by column default, status changes by trigger.

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Sets NEW.<TG_ARGV[0]> to the current transaction id. Triggers call it, through their WHEN
-- clause, only the first time a row reaches a final status, so bulk loads that set it pay nothing.
CREATE OR REPLACE FUNCTION mark_final_xid() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW := jsonb_populate_record(NEW, jsonb_build_object(TG_ARGV[0], pg_current_xact_id()::text));
    RETURN NEW;
END;
$$;

-- A final status is final: the counters counted it once, so it must not change afterwards (a
-- refund is a new refunds row, not an edit of the payment).
CREATE OR REPLACE FUNCTION keep_final_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%: row % has the final status %, it cannot become %',
        TG_TABLE_NAME, OLD.id, OLD.status, NEW.status
        USING ERRCODE = 'check_violation';
END;
$$;

CREATE TABLE IF NOT EXISTS users (
    id             bigserial PRIMARY KEY,
    email          text NOT NULL UNIQUE,
    tier           text NOT NULL CHECK (tier IN ('free', 'basic', 'pro', 'enterprise')),
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'churned')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_active_at timestamptz NOT NULL DEFAULT now(),
    churned_at     timestamptz,
    created_xid    xid8 NOT NULL DEFAULT pg_current_xact_id(),
    churned_xid    xid8
);
CREATE INDEX IF NOT EXISTS users_created_xid ON users (created_xid);
CREATE INDEX IF NOT EXISTS users_churned_xid ON users (churned_xid) WHERE churned_xid IS NOT NULL;
CREATE INDEX IF NOT EXISTS users_active ON users (last_active_at) WHERE status = 'active';
CREATE OR REPLACE TRIGGER users_churned_xid BEFORE INSERT OR UPDATE OF status ON users
    FOR EACH ROW WHEN (NEW.churned_xid IS NULL AND NEW.status IN ('churned'))
    EXECUTE FUNCTION mark_final_xid('churned_xid');

CREATE TABLE IF NOT EXISTS subscriptions (
    id             bigserial PRIMARY KEY,
    user_id        bigint NOT NULL REFERENCES users (id),
    plan           text NOT NULL CHECK (plan IN ('basic', 'pro', 'enterprise')),
    billing_period text NOT NULL CHECK (billing_period IN ('monthly', 'yearly')),
    amount         numeric(12, 2) NOT NULL CHECK (amount >= 0),
    currency       text NOT NULL CHECK (currency IN ('USD', 'EUR', 'GBP')),
    status         text NOT NULL CHECK (status IN ('trialing', 'active', 'past_due', 'canceled')),
    started_at     timestamptz NOT NULL DEFAULT now(),
    canceled_at    timestamptz
);
CREATE INDEX IF NOT EXISTS subscriptions_live ON subscriptions (plan) WHERE status IN ('active', 'past_due');

-- A payment attempt; its status becomes final once (succeeded or failed) and then never changes.
CREATE TABLE IF NOT EXISTS payments (
    id              bigserial PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users (id),
    subscription_id bigint REFERENCES subscriptions (id),
    amount          numeric(14, 2) NOT NULL CHECK (amount >= 0),
    currency        text NOT NULL CHECK (currency IN ('USD', 'EUR', 'GBP')),
    plan            text NOT NULL CHECK (plan IN ('basic', 'pro', 'enterprise')),
    method          text NOT NULL CHECK (method IN ('card', 'bank_transfer', 'paypal', 'crypto')),
    source          text NOT NULL CHECK (source IN ('web', 'mobile', 'api')),
    status          text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    final_xid       xid8
);
CREATE INDEX IF NOT EXISTS payments_final_xid ON payments (final_xid) WHERE final_xid IS NOT NULL;
CREATE INDEX IF NOT EXISTS payments_created_at ON payments (created_at);
CREATE INDEX IF NOT EXISTS payments_user_id ON payments (user_id);
CREATE OR REPLACE TRIGGER payments_final_xid BEFORE INSERT OR UPDATE OF status ON payments
    FOR EACH ROW WHEN (NEW.final_xid IS NULL AND NEW.status IN ('succeeded', 'failed'))
    EXECUTE FUNCTION mark_final_xid('final_xid');
CREATE OR REPLACE TRIGGER payments_keep_final BEFORE UPDATE OF status ON payments
    FOR EACH ROW WHEN (OLD.final_xid IS NOT NULL AND NEW.status IS DISTINCT FROM OLD.status)
    EXECUTE FUNCTION keep_final_status();

CREATE TABLE IF NOT EXISTS refunds (
    id          bigserial PRIMARY KEY,
    payment_id  bigint NOT NULL REFERENCES payments (id),
    amount      numeric(14, 2) NOT NULL CHECK (amount >= 0),
    reason      text NOT NULL DEFAULT 'requested_by_customer',
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_xid xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX IF NOT EXISTS refunds_created_xid ON refunds (created_xid);
CREATE INDEX IF NOT EXISTS refunds_payment_id ON refunds (payment_id);

CREATE TABLE IF NOT EXISTS signals (
    id                 bigserial PRIMARY KEY,
    strategy           text NOT NULL
        CHECK (strategy IN ('momentum', 'mean_reversion', 'breakout', 'sentiment', 'ml_ensemble')),
    timeframe          text NOT NULL CHECK (timeframe IN ('1m', '5m', '1h', '4h', '1d')),
    model              text NOT NULL,
    symbol             text NOT NULL,
    direction          text NOT NULL CHECK (direction IN ('long', 'short')),
    confidence         double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    generation_seconds double precision NOT NULL CHECK (generation_seconds >= 0),
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
    outcome            text CHECK (outcome IN ('success', 'failure', 'expired')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    closed_at          timestamptz,
    created_xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    closed_xid         xid8,
    CHECK ((status = 'closed') = (outcome IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS signals_created_xid ON signals (created_xid);
CREATE INDEX IF NOT EXISTS signals_closed_xid ON signals (closed_xid) WHERE closed_xid IS NOT NULL;
CREATE OR REPLACE TRIGGER signals_closed_xid BEFORE INSERT OR UPDATE OF status ON signals
    FOR EACH ROW WHEN (NEW.closed_xid IS NULL AND NEW.status IN ('closed'))
    EXECUTE FUNCTION mark_final_xid('closed_xid');
CREATE OR REPLACE TRIGGER signals_keep_final BEFORE UPDATE OF status ON signals
    FOR EACH ROW WHEN (OLD.closed_xid IS NOT NULL AND NEW.status IS DISTINCT FROM OLD.status)
    EXECUTE FUNCTION keep_final_status();

-- One row per model evaluation run; the newest row per model is its current accuracy.
CREATE TABLE IF NOT EXISTS model_evaluations (
    id           bigserial PRIMARY KEY,
    model        text NOT NULL,
    accuracy     double precision NOT NULL,
    evaluated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS model_evaluations_latest ON model_evaluations (model, evaluated_at DESC);

CREATE TABLE IF NOT EXISTS portfolios (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id),
    account_type text NOT NULL CHECK (account_type IN ('individual', 'joint', 'retirement', 'institutional')),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS positions (
    id           bigserial PRIMARY KEY,
    portfolio_id bigint NOT NULL REFERENCES portfolios (id),
    symbol       text NOT NULL,
    quantity     numeric(20, 8) NOT NULL,
    avg_price    numeric(20, 8) NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    opened_at    timestamptz NOT NULL DEFAULT now(),
    closed_at    timestamptz
);
CREATE INDEX IF NOT EXISTS positions_open ON positions (portfolio_id) WHERE status = 'open';

-- End-of-day valuation per portfolio, in USD: value, that day's return and its 95% one-day VaR.
CREATE TABLE IF NOT EXISTS portfolio_daily_snapshots (
    portfolio_id bigint NOT NULL REFERENCES portfolios (id),
    day          date NOT NULL,
    value_usd    numeric(20, 2) NOT NULL,
    daily_return double precision NOT NULL,
    var95_usd    numeric(20, 2) NOT NULL,
    PRIMARY KEY (portfolio_id, day)
);
CREATE INDEX IF NOT EXISTS portfolio_daily_snapshots_day ON portfolio_daily_snapshots (day);

-- An order; its status becomes final once (filled, rejected, canceled or expired).
CREATE TABLE IF NOT EXISTS orders (
    id           bigserial PRIMARY KEY,
    portfolio_id bigint NOT NULL REFERENCES portfolios (id),
    broker       text NOT NULL CHECK (broker IN ('alpaca', 'interactive_brokers', 'binance', 'oanda')),
    segment      text NOT NULL CHECK (segment IN ('equity', 'crypto', 'forex', 'options')),
    order_type   text NOT NULL CHECK (order_type IN ('market', 'limit', 'stop', 'stop_limit')),
    side         text NOT NULL CHECK (side IN ('buy', 'sell')),
    symbol       text NOT NULL,
    quantity     numeric(20, 8) NOT NULL CHECK (quantity > 0),
    status       text NOT NULL
        CHECK (status IN ('pending', 'open', 'filled', 'rejected', 'canceled', 'expired')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    final_xid    xid8
);
CREATE INDEX IF NOT EXISTS orders_final_xid ON orders (final_xid) WHERE final_xid IS NOT NULL;
CREATE OR REPLACE TRIGGER orders_final_xid BEFORE INSERT OR UPDATE OF status ON orders
    FOR EACH ROW WHEN (NEW.final_xid IS NULL AND NEW.status IN ('filled', 'rejected', 'canceled', 'expired'))
    EXECUTE FUNCTION mark_final_xid('final_xid');
CREATE OR REPLACE TRIGGER orders_keep_final BEFORE UPDATE OF status ON orders
    FOR EACH ROW WHEN (OLD.final_xid IS NOT NULL AND NEW.status IS DISTINCT FROM OLD.status)
    EXECUTE FUNCTION keep_final_status();

-- An execution (fill) of an order; notional in USD.
CREATE TABLE IF NOT EXISTS trades (
    id           bigserial PRIMARY KEY,
    order_id     bigint NOT NULL REFERENCES orders (id),
    broker       text NOT NULL CHECK (broker IN ('alpaca', 'interactive_brokers', 'binance', 'oanda')),
    segment      text NOT NULL CHECK (segment IN ('equity', 'crypto', 'forex', 'options')),
    quantity     numeric(20, 8) NOT NULL,
    price        numeric(20, 8) NOT NULL,
    notional_usd numeric(20, 2) NOT NULL CHECK (notional_usd >= 0),
    executed_at  timestamptz NOT NULL DEFAULT now(),
    created_xid  xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX IF NOT EXISTS trades_created_xid ON trades (created_xid);
CREATE INDEX IF NOT EXISTS trades_order_id ON trades (order_id);
