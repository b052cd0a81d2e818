"""The control endpoints every sandbox has (``/_sandbox/clock``, ``switches``, ``faults``,
``requests``), on a state that offers ``now()``, ``clock``, ``advance_clock``,
``set_clock_offset``, ``switches``, ``set_switches``, ``reset_switches``, ``faults``,
``add_fault``, ``remove_fault``, ``clear_faults``, ``requests`` and ``clear_requests``."""

from __future__ import annotations

from pleo_sandbox.clock import iso
from pleo_sandbox.errors import ApiError
from pleo_sandbox.faults import FAULT_PARAMETERS
from pleo_sandbox.messages import Request, Response
from pleo_sandbox.routing import Route, control_kwargs, control_route, snake


def _clock_body(server) -> dict:
    state = server.state
    return {"now": iso(state.now()), "offsetSeconds": state.clock.offset_seconds}


def c_get_clock(server, req: Request) -> Response:
    return Response(200, _clock_body(server))


def _number(req: Request, name: str) -> int | float:
    """The control body's number ``name``, or a 400."""
    value = req.control_json().get(name)
    if not isinstance(value, int | float):
        raise ApiError(400, "SANDBOX_BAD_REQUEST", f"'{name}' (a number) is required.")
    return value


def c_advance_clock(server, req: Request) -> Response:
    server.state.advance_clock(_number(req, "seconds"))
    return Response(200, _clock_body(server))


def c_set_clock(server, req: Request) -> Response:
    server.state.set_clock_offset(_number(req, "offsetSeconds"))
    return Response(200, _clock_body(server))


def c_get_switches(server, req: Request) -> Response:
    return Response(200, {"data": server.state.switches})


def c_set_switches(server, req: Request) -> Response:
    body = {snake(k): v for k, v in req.control_json().items()}
    return Response(200, {"data": server.state.set_switches(**body)})


def c_reset_switches(server, req: Request) -> Response:
    return Response(200, {"data": server.state.reset_switches()})


def c_list_faults(server, req: Request) -> Response:
    return Response(200, {"data": [f.to_dict() for f in server.state.faults.list()]})


def c_clear_faults(server, req: Request) -> Response:
    server.state.clear_faults()
    return Response(204)


def c_remove_fault(server, req: Request, fault_id: str) -> Response:
    if not server.state.remove_fault(fault_id):
        raise ApiError(404, "SANDBOX_NOT_FOUND", "No such fault.")
    return Response(204)


def c_requests(server, req: Request) -> Response:
    return Response(200, {"data": server.state.requests(req.param("method"), req.param("path"))})


def c_clear_requests(server, req: Request) -> Response:
    server.state.clear_requests()
    return Response(204)


def _add_fault(fault_fields: tuple[str, ...]):
    def c_add_fault(server, req: Request) -> Response:
        kw = control_kwargs(req.control_json(), fault_fields)
        if "kind" not in kw:
            raise ApiError(400, "SANDBOX_BAD_REQUEST", "'kind' is required.")
        return Response(201, {"data": server.state.add_fault(**kw).to_dict()})

    return c_add_fault


def common_control_routes(*, fault_fields_left_out: tuple[str, ...] = ()) -> list[Route]:
    """The routes; ``POST /_sandbox/faults`` accepts the fault parameters
    (:data:`~pleo_sandbox.faults.FAULT_PARAMETERS`) but ``fault_fields_left_out``."""
    fault_fields = tuple(f for f in FAULT_PARAMETERS if f not in fault_fields_left_out)
    c = control_route
    return [
        c("GET", "/clock", c_get_clock),
        c("PUT", "/clock", c_set_clock),
        c("POST", "/clock/advance", c_advance_clock),
        c("GET", "/switches", c_get_switches),
        c("PATCH", "/switches", c_set_switches),
        c("PUT", "/switches", c_set_switches),
        c("DELETE", "/switches", c_reset_switches),
        c("GET", "/faults", c_list_faults),
        c("POST", "/faults", _add_fault(fault_fields)),
        c("DELETE", "/faults", c_clear_faults),
        c("DELETE", "/faults/{fault_id}", c_remove_fault),
        c("GET", "/requests", c_requests),
        c("DELETE", "/requests", c_clear_requests),
    ]
