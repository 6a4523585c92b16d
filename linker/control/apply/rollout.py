"""Make-before-break waits (linker.control.rollout): a gateway is ready before the site moves to it.

A gateway is ready once its agent published the instance's own public key (``naming.gateway_key_parameter``): the
bootstrap finished, the daemon and the agent run and read the link. ``up`` waits for that before it moves the EIP
and the routes, and fails after its timeout with the instance's state and where to look, rather than hanging.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from linker import naming
from linker.control.aws import error_code, is_not_found
from linker.control.changes import Action, Change, Kind
from linker.errors import CloudError

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


def note_gateway_version(_run: Applier, _c: Change) -> None:
    """A note changes nothing."""


HANDLERS: dict[tuple[Action, Kind], Handler] = {
    (Action.UPDATE, Kind.INSTANCE_READY): update_instance_ready,
    (Action.NOTE, Kind.GATEWAY_VERSION): note_gateway_version,
}
