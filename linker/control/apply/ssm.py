"""SSM Parameter Store changes: the membership document and the link's parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from linker.control.apply.calls import ignore_not_found
from linker.control.changes import Action, Change, Kind
from linker.control.membership_doc import membership_of

if TYPE_CHECKING:
    from linker.control.apply.run import Applier, Handler


def update_membership(run: Applier, c: Change) -> None:
    # a seed writes an address not made yet as null (gateways skip that peer); the final one needs them all
    lookup = run.known if c.param("placeholder") else run.resolve
    doc = membership_of(run.link, c.param("entries"), lookup).to_json()
    run.clients.ssm(c.region).put_parameter(Name=c.target, Value=doc, Type="String", Overwrite=True)


def update_parameter(run: Applier, c: Change) -> None:
    run.clients.ssm(c.region).put_parameter(Name=c.target, Value=c.param("value"), Type="String", Overwrite=True)


def delete_parameter(run: Applier, c: Change) -> None:
    ignore_not_found(run.clients.ssm(c.region).delete_parameter, Name=c.target)


HANDLERS: dict[tuple[Action, Kind], Handler] = {
    (Action.UPDATE, Kind.MEMBERSHIP): update_membership,
    (Action.UPDATE, Kind.PARAMETER): update_parameter,
    (Action.DELETE, Kind.PARAMETER): delete_parameter,
}
