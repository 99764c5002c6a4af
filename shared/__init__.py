"""Dumas shared package: wire contracts and common adapters used by every service."""
