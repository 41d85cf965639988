"""Elasticsearch response shapes built from elserve's objects."""
