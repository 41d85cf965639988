"""The Elasticsearch release elserve answers as (its API behaviour is that release's)."""

ES_VERSION = "9.5.0"
# A fixed build hash: `Warning` headers and `GET /` print it as Elasticsearch prints its own.
BUILD_HASH = "e1serve0000000000000000000000000000e1se"[:40]
BUILD_DATE = "2026-11-01T00:00:00.000000000Z"
LUCENE_VERSION = "10.3.1"
MIN_WIRE_COMPAT = "8.19.0"
MIN_INDEX_COMPAT = "8.0.0"
TAGLINE = "You Know, for Search"
