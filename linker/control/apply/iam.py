"""IAM changes: the site's role, its policies and its instance profile (IAM is global; names carry the site)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from linker import naming
from linker.control.apply.calls import ignore_exists, ignore_not_found
from linker.control.aws import error_code
from linker.control.changes import Action, Change, Kind

if TYPE_CHECKING:
    from linker.control.apply.run import Applier, Handler


def create_iam_role(run: Applier, c: Change) -> None:
    ignore_exists(run.clients.iam().create_role, RoleName=c.target, Path=naming.IAM_PATH,
                  AssumeRolePolicyDocument=c.param("document"), Tags=run.tags(c, naming.ROLE_IAM_ROLE),
                  Description=f"linker gateway of link {run.link}, site {c.site}")


def update_iam_role_policy(run: Applier, c: Change) -> None:
    run.clients.iam().put_role_policy(RoleName=c.target, PolicyName=naming.INLINE_POLICY,
                                      PolicyDocument=c.param("policy"))


def update_iam_attach_policy(run: Applier, c: Change) -> None:
    run.clients.iam().attach_role_policy(RoleName=c.target, PolicyArn=c.param("arn"))


def create_instance_profile(run: Applier, c: Change) -> None:
    ignore_exists(run.clients.iam().create_instance_profile, InstanceProfileName=c.target,
                  Path=naming.IAM_PATH, Tags=run.tags(c, naming.ROLE_INSTANCE_PROFILE))


def update_instance_profile_role(run: Applier, c: Change) -> None:
    try:
        run.clients.iam().add_role_to_instance_profile(InstanceProfileName=c.target, RoleName=c.param("role"))
    except ClientError as exc:
        if error_code(exc) not in ("LimitExceeded", "EntityAlreadyExists"):
            raise


def delete_instance_profile_role(run: Applier, c: Change) -> None:
    ignore_not_found(run.clients.iam().remove_role_from_instance_profile, InstanceProfileName=c.target,
                     RoleName=c.param("role"))


def delete_instance_profile(run: Applier, c: Change) -> None:
    ignore_not_found(run.clients.iam().delete_instance_profile, InstanceProfileName=c.target)


def delete_iam_attach_policy(run: Applier, c: Change) -> None:
    ignore_not_found(run.clients.iam().detach_role_policy, RoleName=c.target, PolicyArn=c.param("arn"))


def delete_iam_role_policy(run: Applier, c: Change) -> None:
    ignore_not_found(run.clients.iam().delete_role_policy, RoleName=c.target, PolicyName=naming.INLINE_POLICY)


def delete_iam_role(run: Applier, c: Change) -> None:
    ignore_not_found(run.clients.iam().delete_role, RoleName=c.target)


HANDLERS: dict[tuple[Action, Kind], Handler] = {
    (Action.CREATE, Kind.IAM_ROLE): create_iam_role,
    (Action.UPDATE, Kind.IAM_ROLE_POLICY): update_iam_role_policy,
    (Action.UPDATE, Kind.IAM_ATTACH_POLICY): update_iam_attach_policy,
    (Action.CREATE, Kind.INSTANCE_PROFILE): create_instance_profile,
    (Action.UPDATE, Kind.INSTANCE_PROFILE_ROLE): update_instance_profile_role,
    (Action.DELETE, Kind.INSTANCE_PROFILE_ROLE): delete_instance_profile_role,
    (Action.DELETE, Kind.INSTANCE_PROFILE): delete_instance_profile,
    (Action.DELETE, Kind.IAM_ATTACH_POLICY): delete_iam_attach_policy,
    (Action.DELETE, Kind.IAM_ROLE_POLICY): delete_iam_role_policy,
    (Action.DELETE, Kind.IAM_ROLE): delete_iam_role,
}
