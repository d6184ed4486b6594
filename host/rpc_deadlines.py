"""A deadline on every gRPC call pynq's PYNQ.remote client makes, and one-line errors for them.

pynq 4.0's ``RemoteDevice`` builds one channel per board (``GrpcChannel``) and calls its stubs
with no deadline: a board that stops answering (a frozen kernel, a cable pulled, an emulator
under ``kill -STOP``) blocks the calling thread forever, in C, where not even Ctrl-C reaches it;
a failed call surfaces as a multi-screen ``grpc.RpcError`` traceback. Its connection wait is
fixed at 5 s and ends in "Failed to connect to remote device", which names no board.

:class:`Deadlines` is a client interceptor put between pynq's stubs and its channel (by
:func:`psqs.host.pynq_compat.bound_remote_calls`). It gives every call the caller's deadline
and turns every gRPC status error into :class:`BoardCallFailed`, one line that names the board
address and the call (``board 127.0.0.5:7967 did not answer Mmio/read within 5 s``).
``BoardCallFailed`` is also a ``grpc.RpcError`` with the original ``code()``, so the places where
pynq handles an ``RpcError`` itself (``pynq.remote.xrfclk``) behave as before.

After one deadline has passed (or the connection is lost: UNAVAILABLE), a board is taken to be
gone: every later call to it fails at once with the same message, naming the call that found
out, instead of waiting out its own deadline (closing an accelerator frees four buffers; four
more full deadlines would turn "a frozen board is reported within the timeout" into five times
that) or replacing the cause with the clean-up call that failed next.
"""
from __future__ import annotations

import atexit

import grpc

from psqs.common.errors import RunFailed


_exiting = False


@atexit.register
def _at_exit() -> None:
    """From here on no call is sent: the intercepted channel makes a new call handle per call, and
    doing that while the interpreter tears grpc down (pynq frees its buffers in ``__del__``)
    crashes the process. Buffers still allocated then stay with the board, as after a client
    that crashed; pynq's ``__del__`` ignores the error."""
    global _exiting
    _exiting = True


class BoardCallFailed(RunFailed, grpc.RpcError):
    """A gRPC call to a PYNQ.remote board failed or timed out (exit status 1)."""

    def __init__(self, message: str, code: grpc.StatusCode):
        super().__init__(message)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return str(self)


def call_name(method: str) -> str:
    """``/mmio.Mmio/read`` -> ``Mmio/read``."""
    return method.rsplit(".", 1)[-1]


class Deadlines(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Every call to the board at ``address`` gets ``timeout()`` seconds (read per call)."""

    def __init__(self, address: str, timeout):
        self.address = address
        self.timeout = timeout
        self.gone: BoardCallFailed | None = None    # the failure that showed the board is gone

    def failure(self, method: str, error: grpc.RpcError) -> BoardCallFailed:
        code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
        name = call_name(method)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            self.gone = BoardCallFailed(f"board {self.address} did not answer {name} within {self.timeout():g} s "
                                        "(frozen, or the network is down)", code)
            return self.gone
        details = (error.details() if callable(getattr(error, "details", None)) else None) or ""
        details = " ".join(str(details).split())
        failure = BoardCallFailed(f"board {self.address}: {name} failed: {code.name}"
                                  + (f" ({details})" if details else ""), code)
        if code == grpc.StatusCode.UNAVAILABLE:     # the connection is gone, not this one call
            self.gone = failure
        return failure

    def _start(self, details):
        if _exiting:
            raise BoardCallFailed(f"board {self.address}: {call_name(details.method)} not sent: the process "
                                  "is exiting", grpc.StatusCode.CANCELLED)
        if self.gone is not None:
            raise BoardCallFailed(str(self.gone), self.gone.code())
        return details._replace(timeout=self.timeout())

    def _unary_response(self, continuation, details, request):
        outcome = continuation(self._start(details), request)
        try:
            outcome.result()
        except grpc.RpcError as error:
            raise self.failure(details.method, error) from None
        return outcome

    def _stream_response(self, continuation, details, request):
        return _Responses(continuation(self._start(details), request), self, details.method)

    intercept_unary_unary = _unary_response
    intercept_stream_unary = _unary_response
    intercept_unary_stream = _stream_response
    intercept_stream_stream = _stream_response


class _Responses:
    """A response stream whose errors are :class:`BoardCallFailed`, raised where pynq iterates."""

    def __init__(self, call, deadlines: Deadlines, method: str):
        self._call, self._deadlines, self._method = call, deadlines, method

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._call)
        except grpc.RpcError as error:
            raise self._deadlines.failure(self._method, error) from None

    def __getattr__(self, name):      # the rest of the grpc.Call interface (cancel, code ...)
        return getattr(self._call, name)
