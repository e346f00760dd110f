"""The demo platform: the five services of monitoring/inventory.yml, instrumented by contract."""
