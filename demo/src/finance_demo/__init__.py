"""Reference data model of the AI Finance platform: schema migrations and a seed generator."""
