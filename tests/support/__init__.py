"""Test support: real RabbitMQ virtual hosts, real PostgreSQL databases, bounded waiting."""
