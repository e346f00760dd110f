-- Summaries of live state for the exporters' gauges, kept exact by triggers, so a refresh reads a
-- number of rows that does not grow with the tables (docs/data-contract.md, "Gauge summaries").
--
-- Each summary holds, per label set, the sum of what every current row of its base table
-- contributes to a gauge. A statement-level trigger adds what the rows a statement inserted
-- contribute and subtracts what the rows it deleted contributed (an UPDATE is both), from the
-- statement's transition tables: one aggregated upsert per statement, however many rows it
-- changed, and none when nothing a gauge reads changed (a second login on the same day). A row
-- whose count fell to 0 stays (the label sets are bounded); the exporter's queries skip it.
--
-- Concurrent writers: the upsert locks the summary rows it changes until the writer's
-- transaction ends, in key order (so two multi-row statements do not deadlock on them).
-- Writers at REPEATABLE READ or SERIALIZABLE may get a serialization failure on a summary row
-- and retry, as for any other row they both update.

CREATE TABLE IF NOT EXISTS subscription_live_totals (
    currency      text NOT NULL,
    plan          text NOT NULL,
    subscriptions bigint NOT NULL,   -- live (active or past_due) subscriptions
    mrr_amount    numeric NOT NULL,  -- their monthly amount: yearly ones count amount / 12
    PRIMARY KEY (currency, plan)
);

-- Active (not churned) users by the UTC day of their last_active_at: a day's users leave the
-- 30-day window together, so the gauge sums at most 31 days of rows, never the users table.
CREATE TABLE IF NOT EXISTS user_activity_days (
    day   date NOT NULL,
    tier  text NOT NULL,
    users bigint NOT NULL,
    PRIMARY KEY (day, tier)
);

CREATE TABLE IF NOT EXISTS open_position_totals (
    account_type text PRIMARY KEY,
    positions    bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS portfolio_day_totals (
    day             date NOT NULL,
    account_type    text NOT NULL,
    portfolios      bigint NOT NULL,   -- snapshots of that day
    value_usd       numeric NOT NULL,
    weighted_return numeric NOT NULL,  -- sum(value_usd * daily_return::numeric)
    var95_usd       numeric NOT NULL,
    PRIMARY KEY (day, account_type)
);

-- The one definition of each summary: the upsert that folds `changes` (a query returning a sign,
-- +1 or -1, and the columns of the base table) into it. The triggers pass their transition
-- tables, rebuild_gauge_summaries() the whole table; numeric sums of the same per-row values, so
-- the result equals a full aggregate exactly.
CREATE OR REPLACE FUNCTION gauge_summary_sql(summary text, changes text) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
SELECT format(CASE summary
WHEN 'subscription_live_totals' THEN $q$
INSERT INTO subscription_live_totals AS t (currency, plan, subscriptions, mrr_amount)
SELECT currency, plan, sum(sign),
       sum(sign * CASE billing_period WHEN 'yearly' THEN amount / 12 ELSE amount END)
FROM (%s) AS c
WHERE status IN ('active', 'past_due')
GROUP BY currency, plan
HAVING sum(sign) <> 0
    OR sum(sign * CASE billing_period WHEN 'yearly' THEN amount / 12 ELSE amount END) <> 0
ORDER BY currency, plan
ON CONFLICT (currency, plan) DO UPDATE
SET subscriptions = t.subscriptions + excluded.subscriptions,
    mrr_amount = t.mrr_amount + excluded.mrr_amount
$q$
WHEN 'user_activity_days' THEN $q$
INSERT INTO user_activity_days AS t (day, tier, users)
SELECT (last_active_at AT TIME ZONE 'UTC')::date, tier, sum(sign)
FROM (%s) AS c
WHERE status = 'active'
GROUP BY 1, 2
HAVING sum(sign) <> 0
ORDER BY 1, 2
ON CONFLICT (day, tier) DO UPDATE SET users = t.users + excluded.users
$q$
WHEN 'open_position_totals' THEN $q$
INSERT INTO open_position_totals AS t (account_type, positions)
SELECT account_type, sum(sign)
FROM (%s) AS c
WHERE status = 'open'
GROUP BY account_type
HAVING sum(sign) <> 0
ORDER BY account_type
ON CONFLICT (account_type) DO UPDATE SET positions = t.positions + excluded.positions
$q$
WHEN 'portfolio_day_totals' THEN $q$
INSERT INTO portfolio_day_totals AS t
    (day, account_type, portfolios, value_usd, weighted_return, var95_usd)
SELECT day, account_type, sum(sign), sum(sign * value_usd),
       sum(sign * value_usd * daily_return::numeric), sum(sign * var95_usd)
FROM (%s) AS c
GROUP BY day, account_type
ORDER BY day, account_type
ON CONFLICT (day, account_type) DO UPDATE
SET portfolios = t.portfolios + excluded.portfolios,
    value_usd = t.value_usd + excluded.value_usd,
    weighted_return = t.weighted_return + excluded.weighted_return,
    var95_usd = t.var95_usd + excluded.var95_usd
$q$
END, changes)
$fn$;

-- The rows of `tbl` a statement changed, signed, from its transition tables (op INSERT, UPDATE
-- or DELETE), or all its rows (op REBUILD); rows of positions and snapshots carry their
-- portfolio's account_type. Transition tables are only visible to SQL the trigger function runs
-- itself, hence SQL text that the trigger EXECUTEs rather than a helper function that reads them.
CREATE OR REPLACE FUNCTION gauge_changes(tbl text, op text) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
SELECT CASE WHEN tbl IN ('positions', 'portfolio_daily_snapshots')
            THEN format('SELECT c.*, p.account_type FROM (%s) AS c'
                        ' JOIN portfolios AS p ON p.id = c.portfolio_id', rows)
            ELSE rows END
FROM (SELECT CASE WHEN op = 'REBUILD' THEN format('SELECT 1 AS sign, * FROM %I', tbl)
                  ELSE concat_ws(' UNION ALL ',
                      CASE WHEN op IN ('INSERT', 'UPDATE') THEN 'SELECT 1 AS sign, * FROM new_rows' END,
                      CASE WHEN op IN ('UPDATE', 'DELETE') THEN 'SELECT -1 AS sign, * FROM old_rows' END)
             END AS rows) AS r
$fn$;

-- SECURITY DEFINER: writers (the platform role) change the summaries only through this trigger,
-- never directly; they hold no privilege on the summary tables. TRUNCATE fires no INSERT or
-- DELETE trigger and has no transition table: it empties the summary.
CREATE OR REPLACE FUNCTION maintain_gauge_summaries() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    summary text;
BEGIN
    -- The login hot path: an update of users that moves no one to another day, tier or status
    -- changes no summary, and this static check (its plan cached) costs far less than planning
    -- the dynamic upsert below. (Nested: one SQL expression would name old_rows for INSERT too.)
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'users' THEN
        IF NOT EXISTS (
            SELECT FROM new_rows AS n FULL JOIN old_rows AS o ON o.id = n.id
            WHERE (n.status, n.tier, (n.last_active_at AT TIME ZONE 'UTC')::date)
                IS DISTINCT FROM (o.status, o.tier, (o.last_active_at AT TIME ZONE 'UTC')::date)
        ) THEN
            RETURN NULL;
        END IF;
    END IF;
    FOREACH summary IN ARRAY TG_ARGV LOOP
        IF TG_OP = 'TRUNCATE' THEN
            EXECUTE format('DELETE FROM %I', summary);
        ELSE
            EXECUTE gauge_summary_sql(summary, gauge_changes(TG_TABLE_NAME, TG_OP));
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;

-- A portfolio whose account_type changes moves its open positions and its snapshots to the new
-- label. The SHARE lock waits for transactions still adding positions or snapshots (their
-- trigger read the old account_type) and holds new ones back until this one commits, so none is
-- counted under a label it no longer has. Account types rarely change; other updates pay nothing.
CREATE OR REPLACE FUNCTION move_portfolio_gauges() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF NOT EXISTS (
        SELECT FROM old_rows AS o FULL JOIN new_rows AS n ON n.id = o.id
        WHERE n.account_type IS DISTINCT FROM o.account_type
    ) THEN
        RETURN NULL;
    END IF;
    LOCK TABLE positions, portfolio_daily_snapshots IN SHARE MODE;
    -- The portfolios' old and new rows, signed, with their positions and snapshots: what those
    -- two summaries see as changed.
    EXECUTE gauge_summary_sql('open_position_totals', format($q$
        SELECT c.sign, c.account_type, x.* FROM (%s) AS c
        JOIN positions AS x ON x.portfolio_id = c.id$q$, gauge_changes('portfolios', TG_OP)));
    EXECUTE gauge_summary_sql('portfolio_day_totals', format($q$
        SELECT c.sign, c.account_type, x.* FROM (%s) AS c
        JOIN portfolio_daily_snapshots AS x ON x.portfolio_id = c.id$q$,
        gauge_changes('portfolios', TG_OP)));
    RETURN NULL;
END;
$$;

-- Recompute every summary from its table: the migration's backfill below, and the repair after
-- anything wrote the tables with the summary triggers disabled (session_replication_role =
-- replica, ALTER TABLE ... DISABLE TRIGGER). The SHARE locks keep writers out meanwhile.
CREATE OR REPLACE FUNCTION rebuild_gauge_summaries() RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    LOCK TABLE subscriptions, users, portfolios, positions, portfolio_daily_snapshots
        IN SHARE MODE;
    DELETE FROM subscription_live_totals;
    DELETE FROM user_activity_days;
    DELETE FROM open_position_totals;
    DELETE FROM portfolio_day_totals;
    EXECUTE gauge_summary_sql('subscription_live_totals', gauge_changes('subscriptions', 'REBUILD'));
    EXECUTE gauge_summary_sql('user_activity_days', gauge_changes('users', 'REBUILD'));
    EXECUTE gauge_summary_sql('open_position_totals', gauge_changes('positions', 'REBUILD'));
    EXECUTE gauge_summary_sql(
        'portfolio_day_totals', gauge_changes('portfolio_daily_snapshots', 'REBUILD'));
    -- Statistics for the exporter's plans (index range scans of these small tables).
    ANALYZE subscription_live_totals, user_activity_days, open_position_totals,
        portfolio_day_totals;
END;
$$;
REVOKE ALL ON FUNCTION rebuild_gauge_summaries() FROM PUBLIC;

-- The triggers: per table and event (a trigger with transition tables has one event), the
-- summary it feeds. A bulk load keeps them: one INSERT ... SELECT of a million rows is one
-- aggregated upsert (the demo's seed of 1e6 payments measured no slower with them than with
-- the triggers disabled and a rebuild at the end; docs/performance.md).
DO $$
DECLARE
    tbl text;
    summary text;
BEGIN
    FOR tbl, summary IN VALUES
        ('subscriptions', 'subscription_live_totals'),
        ('users', 'user_activity_days'),
        ('positions', 'open_position_totals'),
        ('portfolio_daily_snapshots', 'portfolio_day_totals')
    LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER gauge_summary_insert AFTER INSERT ON %I'
            ' REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT'
            ' EXECUTE FUNCTION maintain_gauge_summaries(%L)', tbl, summary);
        EXECUTE format('CREATE OR REPLACE TRIGGER gauge_summary_update AFTER UPDATE ON %I'
            ' REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT'
            ' EXECUTE FUNCTION maintain_gauge_summaries(%L)', tbl, summary);
        EXECUTE format('CREATE OR REPLACE TRIGGER gauge_summary_delete AFTER DELETE ON %I'
            ' REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT'
            ' EXECUTE FUNCTION maintain_gauge_summaries(%L)', tbl, summary);
        EXECUTE format('CREATE OR REPLACE TRIGGER gauge_summary_truncate AFTER TRUNCATE ON %I'
            ' FOR EACH STATEMENT EXECUTE FUNCTION maintain_gauge_summaries(%L)', tbl, summary);
    END LOOP;
END
$$;
CREATE OR REPLACE TRIGGER gauge_summary_update AFTER UPDATE ON portfolios
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION move_portfolio_gauges();

-- Backfill: the triggers above already hold their tables' locks (SHARE ROW EXCLUSIVE, until this
-- migration commits), so no write slips between the rebuild's snapshot and the triggers.
SELECT rebuild_gauge_summaries();

-- The exporter reads the summaries, nothing more.
GRANT SELECT ON subscription_live_totals, user_activity_days, open_position_totals,
    portfolio_day_totals TO finance_exporter;
