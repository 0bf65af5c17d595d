"""The watch service (预警): surges per place and category, one incident reported by many, and
矛盾纠纷 risk, detected on the stream of routed petitions."""
