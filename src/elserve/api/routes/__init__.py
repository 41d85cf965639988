"""The HTTP routes, one module per Elasticsearch API.

Every handler and dependency is `async def`: FastAPI runs a plain `def` on its thread pool, and
that hop alone cost an idle request ~0.2 ms (measured). Whatever may block -- bcrypt, a big
tokenization, a deployment start -- is sent to a thread or awaited where it happens.
"""
