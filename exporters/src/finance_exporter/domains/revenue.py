"""Revenue: payments, refunds, recurring revenue, subscriptions and users."""

from __future__ import annotations

from finance_exporter.spec import MetricSpec, QuerySpec, xid_range

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
SELECT currency, plan,
       sum(CASE billing_period WHEN 'yearly' THEN amount / 12 ELSE amount END) AS value
FROM subscriptions
WHERE status IN ('active', 'past_due')
GROUP BY currency, plan
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
SELECT plan, count(*) AS value
FROM subscriptions
WHERE status IN ('active', 'past_due')
GROUP BY plan
""",
)

ACTIVE_USERS = QuerySpec(
    name="active_users",
    source="postgres",
    metric=MetricSpec(
        name="finance_active_users",
        kind="gauge",
        help="Users not churned and seen in the last 30 days.",
        labels=("tier",),
        max_series=4,
    ),
    sql="""
SELECT tier, count(*) AS value
FROM users
WHERE status = 'active' AND last_active_at >= now() - interval '30 days'
GROUP BY tier
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
