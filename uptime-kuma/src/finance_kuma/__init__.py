"""kuma-setup: Uptime Kuma's admin account, monitors and Prometheus API key, from files."""
