"""Revenue: payments, refunds, recurring revenue, subscriptions and users."""

from __future__ import annotations

from finance_exporter.spec import MetricSpec, QuerySpec, xid_range

# The gauges read small summaries the reference schema keeps by trigger
# (006_gauge_summaries.sql), never the live tables: a refresh reads at most a few dozen rows
# however large subscriptions and users grow. A schema without them: docs/data-contract.md.
# They sum per label set, so a summary may hold several rows per label set (striped rows).

PAYMENTS_GROSS = QuerySpec(
    name="payments_gross",
    source="postgres",
    incremental=True,
    metric=MetricSpec(
        name="finance_payments_gross_amount_total",
        kind="counter",
        help="Amount of succeeded payments, in units of the currency label.",
        labels=("currency", "plan", "source"),
        max_series=27,
    ),
    sql=f"""
SELECT currency, plan, source, sum(amount) AS value
FROM payments
WHERE {xid_range("final_xid")} AND status = 'succeeded'
GROUP BY currency, plan, source
""",
)

REFUNDS = QuerySpec(
    name="refunds",
    source="postgres",
    incremental=True,
    metric=MetricSpec(
        name="finance_refunds_amount_total",
        kind="counter",
        help="Amount refunded, in units of the currency label, by the refunded payment's plan.",
        labels=("currency", "plan", "source"),
        max_series=27,
    ),
    sql=f"""
SELECT p.currency, p.plan, p.source, sum(r.amount) AS value
FROM refunds AS r
JOIN payments AS p ON p.id = r.payment_id
WHERE {xid_range("r.created_xid")}
GROUP BY p.currency, p.plan, p.source
""",
)

PAYMENTS = QuerySpec(
    name="payments",
    source="postgres",
    incremental=True,
    metric=MetricSpec(
        name="finance_payments_total",
        kind="counter",
        help="Payments that reached a final status (succeeded or failed), by payment method.",
        labels=("status", "method"),
        max_series=12,
    ),
    sql=f"""
SELECT status, method, count(*) AS value
FROM payments
WHERE {xid_range("final_xid")}
GROUP BY status, method
""",
)

MRR = QuerySpec(
    name="mrr",
    source="postgres",
    metric=MetricSpec(
        name="finance_monthly_recurring_revenue_amount",
        kind="gauge",
        help="Monthly recurring revenue of live (active or past-due) subscriptions; "
        "yearly plans count one twelfth.",
        labels=("currency", "plan"),
        max_series=9,
    ),
    sql="""
SELECT currency, plan, sum(mrr_amount) AS value
FROM subscription_live_totals
GROUP BY currency, plan
HAVING sum(subscriptions) > 0
""",
)

ACTIVE_SUBSCRIPTIONS = QuerySpec(
    name="active_subscriptions",
    source="postgres",
    metric=MetricSpec(
        name="finance_active_subscriptions",
        kind="gauge",
        help="Live (active or past-due) subscriptions.",
        labels=("plan",),
        max_series=3,
    ),
    sql="""
SELECT plan, sum(subscriptions) AS value
FROM subscription_live_totals
GROUP BY plan
HAVING sum(subscriptions) > 0
""",
)

ACTIVE_USERS = QuerySpec(
    name="active_users",
    source="postgres",
    metric=MetricSpec(
        name="finance_active_users",
        kind="gauge",
        help="Users not churned and seen in the last 30 days, counted in whole UTC days: "
        "since 00:00 UTC 30 days ago.",
        labels=("tier",),
        max_series=4,
    ),
    # Day-granular so that a refresh sums at most 31 days x 4 tiers of rows; an exact
    # `now() - interval '30 days'` would also read the boundary day's users, which grow with
    # the table.
    sql="""
SELECT tier, sum(users) AS value
FROM user_activity_days
WHERE day >= (now() AT TIME ZONE 'UTC')::date - 30
GROUP BY tier
HAVING sum(users) > 0
""",
)

SIGNUPS = QuerySpec(
    name="signups",
    source="postgres",
    incremental=True,
    metric=MetricSpec(
        name="finance_user_signups_total",
        kind="counter",
        help="Users who signed up, by tier at the time they were counted.",
        labels=("tier",),
        max_series=4,
    ),
    sql=f"""
SELECT tier, count(*) AS value
FROM users
WHERE {xid_range("created_xid")}
GROUP BY tier
""",
)

CHURNS = QuerySpec(
    name="churns",
    source="postgres",
    incremental=True,
    metric=MetricSpec(
        name="finance_user_churns_total",
        kind="counter",
        help="Users who churned, by tier.",
        labels=("tier",),
        max_series=4,
    ),
    sql=f"""
SELECT tier, count(*) AS value
FROM users
WHERE {xid_range("churned_xid")}
GROUP BY tier
""",
)

QUERIES: tuple[QuerySpec, ...] = (
    PAYMENTS_GROSS,
    REFUNDS,
    PAYMENTS,
    MRR,
    ACTIVE_SUBSCRIPTIONS,
    ACTIVE_USERS,
    SIGNUPS,
    CHURNS,
)
