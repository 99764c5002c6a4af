"""Routing seed data: units.yaml (the unit registry); the SLA calendar is shared/data/."""
