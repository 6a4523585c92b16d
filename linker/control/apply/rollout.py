"""Make-before-break waits (linker.control.rollout): a gateway is ready before the site moves to it.

A gateway is ready once its agent published the instance's own public key (``naming.gateway_key_parameter``): the
bootstrap finished, the daemon and the agent run and read the link. ``up`` waits for that before it moves the EIP
and the routes, and fails after its timeout with the instance's state and where to look, rather than hanging.

A site with two gateways (docs/HA.md) is switched, not moved, by the controller: it writes the planned switch's
record (rule 8) and waits until the site's active record names the new gateway, which writes it only once the
routes point at it (rule 6). The gateways move the routes; the controller never does in a rolling replacement.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from linker import naming
from linker.contract import active_record_instance, switch_request_value
from linker.control.apply.calls import ignore_not_found
from linker.control.aws import error_code, is_not_found
from linker.control.changes import Action, Change, Kind
from linker.errors import CloudError, ContractError

if TYPE_CHECKING:
    from linker.control.apply.run import Applier, Handler


def update_instance_ready(run: Applier, c: Change) -> None:
    """Wait until the instance published its key; CloudError when it stops or the timeout passes first (the
    serving gateway is left as it is, so the site keeps working)."""
    instance = run.resolve(c.param("instance"))
    name = naming.gateway_key_parameter(run.link, c.site, instance)
    ssm, ec2 = run.clients.ssm(c.region), run.clients.ec2(c.region)
    deadline = time.monotonic() + run.timeout
    while True:
        try:
            ssm.get_parameter(Name=name)
            return
        except ClientError as exc:
            if error_code(exc) != "ParameterNotFound":
                raise
        state, reason = _state(ec2, instance)
        if state in ("shutting-down", "terminated", "stopping", "stopped"):
            raise CloudError(f"{c.region}: the new gateway {instance} stopped before it was ready ({reason}); "
                             f"{c.param('serving')} still serves the site",
                             fix="fix the cause named (e.g. grant EC2 use of the EBS encryption key), then run "
                                 "`linker up` again: it launches another")
        if time.monotonic() > deadline:
            raise CloudError(
                f"{c.region}: the new gateway {instance} ({state}) did not report ready within {run.timeout:.0f} s "
                f"(no {name}); {c.param('serving')} still serves the site",
                fix=f"read its boot log: aws ec2 get-console-output --region {c.region} --instance-id {instance} "
                    "--latest --output text; then run `linker up` again: it waits for it, or replaces it once it "
                    "is overdue")
        time.sleep(run.poll)


def _state(ec2: Any, instance: str) -> tuple[str, str]:
    """(state, reason) of ``instance``; ('pending', ...) while EC2 does not show it yet."""
    try:
        found = [i for r in ec2.describe_instances(InstanceIds=[instance])["Reservations"] for i in r["Instances"]]
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        return "pending", "not visible yet"
    if not found:
        return "pending", "not visible yet"
    state = found[0]["State"]["Name"]
    return state, found[0].get("StateReason", {}).get("Message") or state


def _active(ssm: Any, name: str) -> tuple[str | None, int]:
    """(instance, epoch) of the site's active record ``name``: the instance it names (None when it names none or
    is unreadable) and its SSM version, the epoch (0 when there is none, as the agents count it)."""
    try:
        parameter = ssm.get_parameter(Name=name)["Parameter"]
    except ClientError as exc:
        if error_code(exc) != "ParameterNotFound":
            raise
        return None, 0
    try:
        instance: str | None = active_record_instance(parameter["Value"])
    except ContractError:
        instance = None
    return instance, int(parameter.get("Version", 1))


def update_active_switch(run: Applier, c: Change) -> None:
    """Ask the site's standby ``to`` to take over (the switch record at the active record's epoch) and wait until
    the active record names it; the record is then removed. A switch that happened meanwhile (a newer epoch that
    names another gateway) voids the request: it is asked again at the new epoch. CloudError after the timeout,
    the request withdrawn: the old active still serves."""
    to, ssm = run.resolve(c.param("to")), run.clients.ssm(c.region)
    record = c.param("record") or naming.active_parameter(run.link, c.site)
    deadline, asked = time.monotonic() + run.timeout, None
    while True:
        holder, epoch = _active(ssm, record)
        if holder == to:
            ignore_not_found(ssm.delete_parameter, Name=c.target)  # void from now on: no need to keep it
            return
        if asked != epoch:
            ssm.put_parameter(Name=c.target, Value=switch_request_value(to, epoch), Type="String", Overwrite=True)
            asked = epoch
        if time.monotonic() > deadline:
            ignore_not_found(ssm.delete_parameter, Name=c.target)  # no switch later, unasked
            raise CloudError(
                f"{c.region}: {to} did not take over from {c.param('from')} within {run.timeout:.0f} s (the active "
                f"record names {holder or 'no gateway'}); {holder or c.param('from')} still serves the site",
                fix=f"check `linker status --name {run.link}`: the new gateway takes over only once its tunnels work "
                    "(a remote gateway relayed its probe); then run `linker up --ha` again: it asks again")
        time.sleep(run.poll)


def note_gateway_version(_run: Applier, _c: Change) -> None:
    """A note changes nothing."""


def note_rolling(_run: Applier, _c: Change) -> None:
    """A note changes nothing: the next pass of ``up`` replaces the old active."""


HANDLERS: dict[tuple[Action, Kind], Handler] = {
    (Action.UPDATE, Kind.INSTANCE_READY): update_instance_ready,
    (Action.NOTE, Kind.GATEWAY_VERSION): note_gateway_version,
    (Action.UPDATE, Kind.ACTIVE_SWITCH): update_active_switch,
    (Action.NOTE, Kind.ROLLING): note_rolling,
}
