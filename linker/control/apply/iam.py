"""IAM changes: the site's role, its policies and its instance profile (IAM is global; names carry the site)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from linker import naming
from linker.control.apply.calls import ignore_exists, ignore_not_found
from linker.control.aws import error_code, is_not_found
from linker.control.changes import Action, Change, Kind
from linker.control.iam_policy import BOUNDARY_NAME, create_boundary_command
from linker.control.partition import partition_of
from linker.errors import CloudError

if TYPE_CHECKING:
    from linker.control.apply.run import Applier, Handler

DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


def create_iam_boundary(run: Applier, c: Change) -> None:
    """linker's permissions boundary, when this identity may create it (an administrator's); otherwise a CloudError
    whose fix is the command that creates it."""
    try:
        ignore_exists(run.clients.iam().create_policy, PolicyName=BOUNDARY_NAME, Path=naming.IAM_PATH,
                      PolicyDocument=c.param("document"),
                      Description="linker: the most any gateway role may do (the boundary of every role it makes)")
    except ClientError as exc:
        if error_code(exc) not in DENIED:
            raise
        raise CloudError(f"linker's permissions boundary {c.target} does not exist, and this identity may not "
                         "create it (the controller's policy never writes policies: whoever could write the "
                         "boundary could widen it)",
                         fix="an administrator of the account runs, once: "
                             f"{create_boundary_command(c.param('partition'))}") from exc


def create_iam_role(run: Applier, c: Change) -> None:
    boundary = {"PermissionsBoundary": c.param("boundary")} if c.param("boundary", "") else {}
    ignore_exists(run.clients.iam().create_role, RoleName=c.target, Path=naming.IAM_PATH,
                  AssumeRolePolicyDocument=c.param("document"), Tags=run.tags(c, naming.ROLE_IAM_ROLE),
                  Description=f"linker gateway of link {run.link}, site {c.site}", **boundary)


def update_iam_role_boundary(run: Applier, c: Change) -> None:
    try:
        run.clients.iam().put_role_permissions_boundary(RoleName=c.target, PermissionsBoundary=c.param("boundary"))
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        raise CloudError(f"cannot set the permissions boundary {c.param('boundary')} on {c.target}: {exc}",
                         fix="if the boundary does not exist, an administrator of the account runs, once: "
                             f"{create_boundary_command(partition_of(c.region))}") from exc


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
    (Action.CREATE, Kind.IAM_BOUNDARY): create_iam_boundary,
    (Action.UPDATE, Kind.IAM_ROLE_BOUNDARY): update_iam_role_boundary,
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
