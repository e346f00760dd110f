"""Business-metric exporters for the AI Finance platform."""
