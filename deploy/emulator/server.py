"""The gRPC server of one emulated board, on one address (pynq's client always uses port 7967,
so several emulators in one machine listen on different loopback addresses, 127.0.0.x)."""
from __future__ import annotations

import logging
import dataclasses
import random
from concurrent import futures

import grpc

from psqs.common.errors import PsqsError

from .board import EmulatedBoard, EmulatorConfig
from .services import add_services

log = logging.getLogger(__name__)


class EmulatorStartError(PsqsError, OSError):
    """The server could not listen where it was asked to."""


class EmulatorServer:
    """An emulated board serving PYNQ.remote on ``config.host:config.port``.

    ``with EmulatorServer(config) as server: ...`` starts it and stops it; ``server.board`` is the
    board's state (faults can be injected there while it runs).
    """

    def __init__(self, config: EmulatorConfig):
        self.config = config
        self.board = EmulatedBoard(config)
        # SO_REUSEPORT (gRPC's default on Linux) would let a second emulator bind the same address
        # silently and share the clients with the first: refuse instead.
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.workers,
                                                              thread_name_prefix="psqs-emulator"),
                                   options=[("grpc.so_reuseport", 0)])
        add_services(self._server, self.board)
        try:
            bound = self._server.add_insecure_port(self.address)
        except RuntimeError as exc:
            bound, reason = 0, str(exc)
        else:
            reason = "address in use or not local"
        if not bound:
            self.board.close()
            raise EmulatorStartError(f"cannot listen on {self.address} ({reason})")

    @classmethod
    def on_free_loopback(cls, config: EmulatorConfig, attempts: int = 50) -> EmulatorServer:
        """Start on a random free loopback address 127.0.x.y (pynq's client port is fixed at 7967,
        so emulators side by side differ by address, not by port)."""
        rng = random.Random()
        for _ in range(attempts):
            host = f"127.0.{rng.randrange(1, 255)}.{rng.randrange(2, 255)}"
            try:
                return cls(dataclasses.replace(config, host=host)).start()
            except EmulatorStartError:
                continue
        raise EmulatorStartError(f"no free loopback address for an emulator after {attempts} attempts")

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def start(self) -> EmulatorServer:
        self._server.start()
        log.info("emulating %s on %s (%d overlay package(s))", self.board.board.name, self.address,
                 len(self.board.catalog.packages))
        return self

    def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving: RPCs in flight get ``grace`` seconds, then are cancelled (bounded wait)."""
        self._server.stop(grace).wait(timeout=(grace or 0.0) + 5.0)
        self.board.close()

    def wait(self) -> None:
        self._server.wait_for_termination()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
