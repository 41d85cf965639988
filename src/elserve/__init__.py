"""elserve: an Elasticsearch-compatible inference service for learned sparse embeddings."""
