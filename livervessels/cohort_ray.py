"""Cohorts across a Ray cluster: a pool of actors, each keeping its models loaded.

    dispatch = ray_dispatch(RayPool("auto"), run_study, summarize)
    cohort.run_cohort(studies, out_dir, run_study, options, dispatch=dispatch)

Each actor runs whole studies with the same function as a local cohort (cohort.run_one: read, run
into a hidden folder, publish in one rename), so a study's outputs appear complete or not at all.
The driver alone keeps the cohort's state and table. An actor that dies (its node lost, the process
killed, out of memory) takes only its study with it: the hidden folder it left is removed, a new
actor replaces it, and the study runs again, up to RayPool.max_attempts times; the row records the
attempts. Inputs and the output folder must be on a path every node sees (a shared file system),
and every node needs this project installed in the same environment as the driver.

Ray is imported only here and only when a cohort asks for it. Research use only.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from livervessels import cohort
from livervessels.cohort import Dispatch, RunStudy, Study, Summarize
from livervessels.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayPool:
    """Where and how many.

    address: "auto" (the cluster this machine belongs to: RAY_ADDRESS or a running head; else a
    Ray instance started here for the cohort) or a cluster address ("HOST:6379", "ray://HOST:10001").
    workers: actors; by default one per GPU when the cluster has GPUs, else one per
    cpus_per_worker CPUs. cpus_per_worker: CPUs each actor reserves (and torch threads it uses).
    max_attempts: runs of one study before its row says the workers running it died.
    """

    address: str = "auto"
    workers: int | None = None
    cpus_per_worker: int = 4
    max_attempts: int = 3


class StudyWorker:
    """One actor: keeps its models loaded (nnunet_runner's cache lives in its process) and runs
    whole studies."""

    def __init__(self, run_study: RunStudy, summarize: Summarize | None):
        self.run_study, self.summarize = run_study, summarize

    def pid(self) -> int:
        return os.getpid()

    def run(self, study: Study, digest: str, out_dir: str) -> dict:
        return cohort.run_one(study, digest, Path(out_dir), self.run_study, self.summarize)


def connect(address: str):
    """(ray, started): ray connected to the cluster at address (see RayPool), and whether the Ray
    instance was started here ("auto" found none; it is stopped when the cohort ends).

    Raises:
        InputError: Ray is not installed or the cluster cannot be reached.
    """
    try:
        import ray
    except ImportError as exc:
        raise InputError("--ray needs Ray: .venv/bin/pip install 'ray==2.60.0' (scripts/setup.sh installs it)") \
            from exc
    if ray.is_initialized():
        return ray, False
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address == "auto" and not os.environ.get("RAY_ADDRESS"):
            try:
                ray.init(address="auto", **quiet)
            except ConnectionError:
                ray.init(**quiet)  # no cluster here: a local instance for this cohort
                return ray, True
        else:
            check_address(address)  # Ray itself keeps retrying an address nobody answers on
            ray.init(address=None if address == "auto" else address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot reach the Ray cluster at {address}: {exc}; start it (ray start --head) or "
                         "give its address (HOST:6379 or ray://HOST:10001)") from exc
    return ray, False


def check_address(address: str, timeout_s: float = 10.0) -> None:
    """Before any work: a cluster address ("auto" needs none) must be HOST:PORT or ray://HOST:PORT
    with something accepting connections there.

    Raises:
        InputError: it is not, saying what to do.
    """
    import socket

    if address == "auto":
        return
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray {address}: give 'auto' or the cluster's address, HOST:6379 or ray://HOST:10001")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise InputError(f"cannot reach the Ray cluster at {address}: nothing answers at {host}:{port} "
                         f"({exc.strerror or exc}); start it (ray start --head) or give its address "
                         "(HOST:6379 or ray://HOST:10001)") from exc


def actor_options(pool: RayPool, resources: dict, nodes: list[dict]) -> tuple[int, dict]:
    """(number of actors, Ray options of each) for the cluster's resources: one actor per GPU, or
    CPU actors of pool.cpus_per_worker CPUs (at most one node's CPUs, so each can be placed)."""
    gpus = int(resources.get("GPU", 0))
    node_cpus = max([int(n.get("Resources", {}).get("CPU", 0)) for n in nodes if n.get("Alive", True)] or [1])
    cpus = max(1, min(pool.cpus_per_worker, node_cpus))
    if gpus:
        return pool.workers or gpus, {"num_gpus": 1, "num_cpus": cpus}
    return pool.workers or max(1, int(resources.get("CPU", 1)) // cpus), {"num_cpus": cpus}


def ray_dispatch(pool: RayPool, run_study: RunStudy, summarize: Summarize | None = None) -> Dispatch:
    """A cohort.Dispatch that runs studies on a pool of Ray actors (see the module's note).

    Raises (when the cohort starts):
        InputError: Ray is missing or the cluster cannot be reached.
    """
    def dispatch(queue: Iterator[tuple[Study, str]], out_dir: Path) -> Iterator[dict]:
        ray, started = connect(pool.address)
        count, options = actor_options(pool, ray.cluster_resources(), ray.nodes())
        # Ray sets OMP_NUM_THREADS to an actor's CPUs, so torch there uses those, not every core
        remote = ray.remote(StudyWorker).options(max_restarts=0, max_task_retries=0, **options)
        log.info("cohort on Ray: %d actors, %s each", count, options)
        idle = deque(remote.remote(run_study, summarize) for _ in range(count))
        retry: deque[tuple[Study, str, int]] = deque()
        running: dict = {}  # object ref -> (actor, study, digest, attempt)
        exhausted = False
        try:
            while True:
                while idle and (retry or not exhausted):
                    if retry:
                        study, digest, attempt = retry.popleft()
                    else:
                        following = next(queue, None)
                        if following is None:
                            exhausted = True
                            break
                        (study, digest), attempt = following, 1
                    actor = idle.popleft()
                    study = dataclasses.replace(study, path=study.path.resolve())  # workers start elsewhere
                    running[actor.run.remote(study, digest, str(out_dir))] = (actor, study, digest, attempt)
                if not running:
                    return
                (done,), _ = ray.wait(list(running), num_returns=1)
                actor, study, digest, attempt = running.pop(done)
                try:
                    row = ray.get(done)
                except ray.exceptions.RayError as exc:  # the actor died with the study: clean up, run it again
                    cohort.remove_partial_outputs(out_dir, study.study_id)
                    ray.kill(actor)
                    idle.append(remote.remote(run_study, summarize))
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    log.warning("study %s: its worker died (attempt %d of %d): %s", study.study_id, attempt,
                                pool.max_attempts, reason)
                    if attempt < pool.max_attempts:
                        retry.append((study, digest, attempt + 1))
                        continue
                    row = cohort.study_row(study.study_id, str(study.path), "failed",
                                      f"the worker running it died {attempt} times (last: {reason[:200]})",
                                      digest=digest)
                else:
                    idle.append(actor)
                yield {**row, "attempts": attempt}
        finally:
            # interrupted or done: no actor outlives the cohort, and what they were writing goes (once
            # they are dead: a killed actor stops a moment later and could still write a file)
            for actor in [a for a, *_ in running.values()] + list(idle):
                ray.kill(actor)
            if running:
                ray.wait(list(running), num_returns=len(running), timeout=30)
            for _, study, _, _ in running.values():
                cohort.remove_partial_outputs(out_dir, study.study_id)
            if started:
                ray.shutdown()
    return dispatch
