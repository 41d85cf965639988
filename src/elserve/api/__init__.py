"""The HTTP layer: Elasticsearch's routes, bodies, headers and errors."""
