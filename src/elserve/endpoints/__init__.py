"""Inference endpoint configurations: every Elasticsearch rule, pure (no HTTP, processes or storage).

- `task_types`: task types and the unsupported-task message.
- `ids`: PUT/_update id rules and the reserved (preconfigured) ids.
- `lookup`: GET/DELETE/POST path rules (wildcards, not found, task type mismatch).
- `adaptive`: `adaptive_allocations`.
- `service_settings`: the `elasticsearch` service's settings and the deployment checks.
- `elasticsearch_service`: that service's request rules (the `elser` alias, model selection).
- `endpoint`: the `Endpoint` value, its echo and its stored form.
- `put_request`, `update_request`, `infer_request`: the three request bodies.
- `preconfigured`: `.elser-2-elasticsearch`.
- `java_text`, `settings_map`, `json_location`: Elasticsearch's Java-side reading and printing.
"""
