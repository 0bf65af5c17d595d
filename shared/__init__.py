"""The project's shared package: event schemas, topic names, settings, Kafka and database helpers.

Everything here depends on the standard library, pydantic and the core client libraries only;
no service imports another service, they all import from here.
"""
