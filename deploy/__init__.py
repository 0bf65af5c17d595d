"""Running the platform on one machine: the local stack, the demo load, the dashboards.

* ``deploy.stack``: Kafka, PostgreSQL, Prometheus and the services for ``make up``, and the
  private broker and database of the integration tests (its pytest plugin);
* ``deploy.demo``: ``make demo``'s load through the HTTP API;
* ``deploy.grafana``: the dashboards' builder and the check that every panel shows data.

``deploy/kafka`` and ``deploy/prometheus`` are data (the broker's pom.xml and log
configuration, Prometheus's configuration template, alert rules and their tests), not Python
packages. Everything here is imported as an installed package (the editable install of
``make venv``), never through a ``sys.path`` edit; the data folders are found beside the code.
"""
