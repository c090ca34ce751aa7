"""The supervisor degrades, never collapses: backoff, the last good config, healthy siblings."""

from __future__ import annotations

from dataclasses import dataclass, field

from extproc.supervise import BACKOFF_FIRST, BACKOFF_MAX, GIVE_UP_AFTER, STABLE_AFTER, Supervisor


@dataclass
class FakeWorker:
    index: int
    config: bytes
    alive: bool = True
    exitcode: int | None = None
    pid: int | None = None

    def is_alive(self) -> bool:
        return self.alive

    def die(self, code: int = -9) -> None:
        self.alive, self.exitcode = False, code

    def terminate(self) -> None:
        self.die(-15)

    def kill(self) -> None:
        self.die()

    def join(self, timeout: float | None = None) -> None:
        return None


@dataclass
class World:
    now: float = 0.0
    disk: bytes | None = b"good-1"  # None: the file on disk does not validate
    started: list[FakeWorker] = field(default_factory=list)

    def start(self, index: int, config: bytes) -> FakeWorker:
        worker = FakeWorker(index, config)
        self.started.append(worker)
        return worker

    def supervisor(self, workers: int = 2) -> Supervisor:
        return Supervisor(workers, b"good-1", self.start, lambda: self.disk, lambda: self.now)


def test_a_dead_worker_is_restarted_after_a_backoff_and_its_sibling_is_left_alone() -> None:
    world = World()
    supervisor = world.supervisor()
    first, second = supervisor.workers
    first.die()  # type: ignore[attr-defined]
    assert supervisor.tick()
    assert len(world.started) == 2  # not yet: backoff
    world.now += BACKOFF_FIRST
    assert supervisor.tick()
    assert len(world.started) == 3
    assert world.started[-1].index == 0
    assert second.is_alive()


def test_a_restart_uses_the_last_good_config_when_the_file_on_disk_is_bad() -> None:
    world = World()
    supervisor = world.supervisor()
    world.disk = b"good-2"
    supervisor.workers[0].die()  # type: ignore[attr-defined]
    supervisor.tick()
    world.now += BACKOFF_FIRST
    supervisor.tick()
    assert world.started[-1].config == b"good-2"
    world.disk = None  # garbage written to the config file
    supervisor.workers[1].die()  # type: ignore[attr-defined]
    supervisor.tick()
    world.now += BACKOFF_FIRST
    supervisor.tick()
    assert world.started[-1].config == b"good-2"


def test_a_restart_never_brings_back_a_config_older_than_what_the_siblings_reloaded() -> None:
    world = World()
    supervisor = world.supervisor()
    world.disk = b"good-2"  # a stricter policy: the running workers reload it
    supervisor.config_changed()
    world.disk = None  # then garbage is written over it
    supervisor.config_changed()
    supervisor.workers[0].die()  # type: ignore[attr-defined]
    supervisor.tick()
    world.now += BACKOFF_FIRST
    supervisor.tick()
    assert world.started[-1].config == b"good-2"


def test_the_backoff_doubles_up_to_a_cap_and_resets_after_a_stable_run() -> None:
    world = World()
    supervisor = world.supervisor(workers=1)
    delays = []
    for _ in range(9):
        supervisor.workers[0].die()  # type: ignore[attr-defined]
        supervisor.tick()
        before = len(world.started)
        waited = 0.0
        while len(world.started) == before:
            world.now += 0.25
            waited += 0.25
            supervisor.tick()
        delays.append(waited)
    assert delays[:4] == [BACKOFF_FIRST, 2 * BACKOFF_FIRST, 4 * BACKOFF_FIRST, 8 * BACKOFF_FIRST]
    assert max(delays) == BACKOFF_MAX
    world.now += STABLE_AFTER
    supervisor.tick()
    supervisor.workers[0].die()  # type: ignore[attr-defined]
    supervisor.tick()
    world.now += BACKOFF_FIRST
    supervisor.tick()
    assert supervisor.workers[0].is_alive()


def test_one_worker_that_cannot_start_never_stops_the_service() -> None:
    world = World()
    supervisor = world.supervisor()
    for _ in range(GIVE_UP_AFTER * 3):
        supervisor.workers[0].die(2)  # type: ignore[attr-defined]
        world.now += BACKOFF_MAX
        assert supervisor.tick()
    assert supervisor.workers[1].is_alive()


def test_it_gives_up_only_when_no_worker_has_ever_been_able_to_serve() -> None:
    world = World()
    supervisor = world.supervisor()
    results = []
    for _ in range(GIVE_UP_AFTER + 1):
        for worker in supervisor.workers:
            worker.die(2)  # type: ignore[attr-defined]
        results.append(supervisor.tick())
        world.now += BACKOFF_MAX
        supervisor.tick()
    assert results[-1] is False
    assert all(results[: GIVE_UP_AFTER - 1])
