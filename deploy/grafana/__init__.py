"""The Grafana dashboards as code, and the check that every panel shows data.

``python -m deploy.grafana.build_dashboards`` writes ``dashboards/*.json`` (what Grafana
loads, through ``provisioning/``); ``python -m deploy.grafana.check_panels`` runs every panel
query against a Prometheus (``make demo`` ends with it). The tests import both modules as
part of the installed package; ``dashboards/`` and ``provisioning/`` are data beside them.
"""
