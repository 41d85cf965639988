"""The `ray` deployment backend: each deployment a Ray Serve application on a Ray cluster.

Ray is an optional dependency (`pip install 'elserve[ray]'`); nothing here is imported unless
`elserve serve --backend ray` asks for it.
"""

from __future__ import annotations

INSTALL_HINT = "the ray backend needs Ray Serve: pip install 'elserve[ray]'"


def ray_available() -> bool:
    try:
        import ray  # noqa: F401  # imported only to check that the extra is installed
        from ray import serve  # noqa: F401  # likewise
    except ImportError:
        return False
    return True
