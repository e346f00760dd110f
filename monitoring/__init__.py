"""Config as code: inventory.yml (services, teams, SLOs) and the rule and dashboard generators."""
