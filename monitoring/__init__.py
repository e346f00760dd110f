"""Config as code and the helpers start-monitoring.sh calls (standard library, validate: PyYAML)."""
