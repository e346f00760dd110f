-- The account overview (GET /v1/accounts/{id}/overview on the gateway) reads one user's
-- subscriptions, portfolios and orders. The platform role may SELECT them already (003); these
-- indexes keep those reads from scanning the tables as the demo's history grows.
CREATE INDEX IF NOT EXISTS subscriptions_user_id ON subscriptions (user_id);
CREATE INDEX IF NOT EXISTS portfolios_user_id ON portfolios (user_id);
CREATE INDEX IF NOT EXISTS orders_portfolio_id ON orders (portfolio_id);
