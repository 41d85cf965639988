"""One owner for the Serve applications of front ends that share a store and a Ray cluster.

Every front end serves every recorded deployment through a handle on its Serve application, but only the
holder of the scaler lease (store/lease.py) deploys, updates and deletes applications: two front ends
never deploy one application with different settings, and none deletes one the others still serve when
it stops. The desired state is the store's `deployment` record; the owner deploys an application only
when Serve does not run it, or runs it with other settings than the record's (the `ray_application`
record keeps a fingerprint of what was last deployed), so a new owner taking over redeploys nothing
that is already right. Serve's own autoscaler, configured by the owner alone, scales adaptive
deployments from the load all front ends' handles report. The others wait for the application to
appear and attach to it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from ray import serve

from elserve.deployments.rayserve.peer_counters import FrontEndCounters
from elserve.store import Lease, Repository, StoreWriteError

log = logging.getLogger("elserve.deployments")

_APPLIED = "ray_application"  # what the owner last deployed: application name -> {"fingerprint": ...}
_DEPLOYMENTS = "deployment"  # the desired state (operations/deployments.py records it)
APPLICATION_PREFIX = "elserve-"  # rayserve/deployment.py's application_name
# How often a front end waiting for the owner looks whether Serve runs the application yet.
_ATTACH_POLL_S = 0.5


class ApplicationGone(Exception):
    """The deployment was stopped here while this front end waited for its application."""


def fingerprint(identity: dict[str, Any]) -> str:
    """What decides whether an application must be deployed again: its model and Serve options, not the
    replica count an autoscaler starts from (it changes as Serve scales)."""
    settings = dict(identity)
    if isinstance(settings.get("autoscaling_config"), dict):
        settings["autoscaling_config"] = {
            k: v for k, v in settings["autoscaling_config"].items() if k != "initial_replicas"
        }
    return hashlib.sha256(orjson.dumps(settings, option=orjson.OPT_SORT_KEYS)).hexdigest()


class SharedApplications:
    def __init__(self, repo: Repository, lease: Lease) -> None:
        self._repo = repo
        self._lease = lease
        self._owner = False
        self._closed = False
        self._given_up: set[str] = set()
        self._lock = threading.Lock()
        self.counters = FrontEndCounters(repo)

    @property
    def owner(self) -> bool:
        return self._owner and not self._closed

    def check(self) -> tuple[bool, bool]:
        """Blocking. Renew or take the lease: (owner now, just became it)."""
        if self._closed:
            return False, False
        held = self._lease.held()
        became = held and not self._owner
        if held != self._owner:
            log.info(
                "%s the scaler lease: %s",
                "took" if held else "lost",
                "this front end owns the Serve applications" if held else "another front end owns them",
            )
        self._owner = held
        return held, became

    def deletes(self) -> bool:
        """Whether stopping a deployment here deletes its application (the owner's, while it serves)."""
        return self.owner

    def give_up(self, application: str) -> None:
        """A deployment stopped here: a start waiting for its application stops waiting."""
        with self._lock:
            self._given_up.add(application)

    def close(self) -> None:
        """This front end stops: it deletes nothing more, and hands the lease on at once."""
        self._closed = True
        self._lease.close()

    def deploy(self, application: str, identity: dict[str, Any], run: Callable[[], Any]) -> Any:
        """Blocking. A handle on `application`: deployed by `run` here if this front end owns it and Serve does
        not run it with these settings; else, once the owner has deployed it, Serve's own."""
        with self._lock:
            self._given_up.discard(application)
        wanted = fingerprint(identity)
        while True:
            if self.owner:
                return self._deploy_owned(application, wanted, run)
            if self._running(application):
                return serve.get_app_handle(application)
            with self._lock:
                if application in self._given_up:
                    raise ApplicationGone(application)
            time.sleep(_ATTACH_POLL_S)

    def _deploy_owned(self, application: str, wanted: str, run: Callable[[], Any]) -> Any:
        applied = self._repo.get(_APPLIED, application) or {}
        if applied.get("fingerprint") == wanted and self._running(application):
            return serve.get_app_handle(application)
        handle = run()
        try:
            self._repo.put(_APPLIED, application, {"fingerprint": wanted})
        except StoreWriteError as exc:  # the next owner deploys it once more: no harm beyond that
            log.warning("could not record the deployment of [%s]: %s", application, exc)
        return handle

    @staticmethod
    def _running(application: str) -> bool:
        status = serve.status().applications.get(application)
        return status is not None and str(getattr(status.status, "value", status.status)) != "DELETING"

    def sweep(self) -> list[str]:
        """Blocking; the owner's. Delete the applications whose deployment no front end records any more
        (deleted through another front end while their owner was away): their names."""
        if not self.owner:
            return []
        known = [name for name in serve.status().applications if name.startswith(APPLICATION_PREFIX)]
        if not known:
            return []
        recorded = {APPLICATION_PREFIX + key for key, _ in self._repo.list(_DEPLOYMENTS)}
        orphans = [name for name in known if name not in recorded]
        for name in orphans:
            log.info("deleting the Serve application [%s]: its deployment is no longer recorded", name)
            serve.delete(name, _blocking=False)
            self._repo.delete(_APPLIED, name)
        return orphans
