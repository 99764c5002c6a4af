"""Routing seed data: units.yaml (unit registry) and holidays.yaml (SLA calendar)."""
