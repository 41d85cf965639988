"""Query parameters as Elasticsearch reads them: known names only, strict booleans."""

from __future__ import annotations

from starlette.requests import Request

from elserve.errors import IllegalArgumentException

# Accepted on every route (Elasticsearch's `RestRequest` response parameters).
COMMON = frozenset({"pretty", "human", "error_trace", "filter_path"})


def check_params(request: Request, allowed: frozenset[str]) -> None:
    unknown = [k for k in request.query_params if k not in allowed and k not in COMMON]
    if not unknown:
        return
    path = request.url.path
    if len(unknown) == 1:
        raise IllegalArgumentException(f"request [{path}] contains unrecognized parameter: [{unknown[0]}]")
    listed = ", ".join(f"[{u}]" for u in unknown)
    raise IllegalArgumentException(f"request [{path}] contains unrecognized parameters: {listed}")


def parse_bool(value: str | None, default: bool) -> bool:
    """`true`, `false`, or empty (a bare `?flag` means true); anything else is refused."""
    if value is None:
        return default
    if value in ("", "true"):
        return True
    if value == "false":
        return False
    raise IllegalArgumentException(f"Failed to parse value [{value}] as only [true] or [false] are allowed.")


def parse_int(value: str | None, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise IllegalArgumentException(f"Failed to parse int parameter [{name}] with value [{value}]") from None


def parse_page_param(value: str | None, name: str, default: int) -> int:
    """`from` / `size` of the ML list APIs (`PageParams`): integers, never negative."""
    number = parse_int(value, name, default)
    if number < 0:
        raise IllegalArgumentException(f"Parameter [{name}] cannot be < 0")
    return number
