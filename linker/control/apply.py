"""Execute a plan through boto3: phase by phase, the regions of a phase in parallel (a thread each).

Idempotent and tag-driven: every create tags atomically (TagSpecifications / Tags), a create that finds its
resource already there adopts it, and every delete treats NotFound as done, so a run that died at any point is
completed by the next ``up`` and cleaned by ``down``. Thread-safety: one ``Applier`` per run; the resolved
references are guarded by a lock, the boto3 clients are thread-safe.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from linker import naming
from linker.control.aws import Clients, cloud_call, error_code, is_not_found
from linker.control.changes import Change, Ref, by_phase
from linker.control.membership_doc import membership_of
from linker.control.package import Package
from linker.errors import CloudError

log = logging.getLogger("linker.control")
Progress = Callable[[Change, str], None]


class Applier:
    """Applies changes for one run. ``run_id`` seeds the ClientTokens, so a retried call within the run is
    deduplicated by AWS while a later run (after a ``down``) gets fresh instances."""

    def __init__(self, clients: Clients, link: str, run_id: str, progress: Progress | None = None,
                 max_workers: int = 8, poll: float = 2.0, timeout: float = 600.0,
                 package: Package | None = None) -> None:
        self.clients, self.link, self.run_id, self.package = clients, link, run_id, package
        self.progress = progress or (lambda change, status: None)
        self.max_workers, self.poll, self.timeout = max_workers, poll, timeout
        self._refs: dict[Ref, str] = {}
        self._lock = threading.Lock()

    def apply(self, changes: list[Change]) -> None:
        """Apply ``changes``; raises the first error of a phase after that phase's other regions finished."""
        for _phase, regions in by_phase(changes).items():
            workers = max(1, min(self.max_workers, len(regions)))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(self._region, todo) for todo in regions.values()]
            errors = [f.exception() for f in futures if f.exception() is not None]
            if errors:
                raise errors[0]  # type: ignore[misc]

    def _region(self, todo: list[Change]) -> None:
        for change in todo:
            self.progress(change, "start")
            handler = getattr(self, f"_{change.action}_{change.kind.replace('-', '_')}")
            with cloud_call(f"{change.action} {change.kind}", change.region, change.target):
                handler(change)
            log.info("%s %s", change.action, change.kind, extra={"region": change.region, "resource": change.target})
            self.progress(change, "done")

    # --- references ---

    def _set(self, kind: str, site: str, value: str) -> None:
        with self._lock:
            self._refs[Ref(kind, site)] = value

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Ref):
            with self._lock:
                if value not in self._refs:
                    raise RuntimeError(f"{value} was not made by an earlier phase")  # a planner bug
                return self._refs[value]
        return value

    def _known(self, value: Any) -> Any:
        """``value`` resolved, or None while what it refers to is not made yet (the seed phase)."""
        with self._lock:
            return self._refs.get(value) if isinstance(value, Ref) else value

    def _tags(self, c: Change, role: str, extra: dict[str, str] | None = None) -> list[dict[str, str]]:
        tags = {**dict(c.param("tags", ())), naming.TAG_ROLE: role, **(extra or {})}
        return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]

    def _token(self, *parts: str) -> str:
        return hashlib.sha256(":".join((self.run_id, self.link, *parts)).encode()).hexdigest()[:64]

    # --- SSM ---

    def _update_membership(self, c: Change) -> None:
        # a seed writes an address not made yet as null (gateways skip that peer); the final one needs them all
        lookup = self._known if c.param("placeholder") else self.resolve
        doc = membership_of(self.link, c.param("entries"), lookup).to_json()
        self.clients.ssm(c.region).put_parameter(Name=c.target, Value=doc, Type="String", Overwrite=True)

    def _delete_parameter(self, c: Change) -> None:
        _ignore_not_found(self.clients.ssm(c.region).delete_parameter, Name=c.target)

    # --- S3: the controller's wheel for the gateways ---

    def _create_bucket(self, c: Change) -> None:
        s3 = self.clients.get("s3", c.region)
        kwargs: dict[str, Any] = {"Bucket": c.target}
        if c.region != "us-east-1":  # us-east-1 refuses its own name as a LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": c.region}
        try:
            s3.create_bucket(**kwargs)
        except ClientError as exc:
            if error_code(exc) != "BucketAlreadyOwnedByYou":
                raise
        s3.put_public_access_block(Bucket=c.target, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
        self._update_bucket_tags(c)  # last: tags present means the bucket is fully set up

    def _update_bucket_tags(self, c: Change) -> None:
        self.clients.get("s3", c.region).put_bucket_tagging(Bucket=c.target, Tagging={
            "TagSet": self._tags(c, naming.ROLE_BUCKET)})

    def _create_package(self, c: Change) -> None:
        if self.package is None or self.package.key != c.param("key"):
            raise RuntimeError("the applier was not given the package the plan uploads")  # a bug
        self.clients.get("s3", c.region).put_object(Bucket=c.target, Key=self.package.key, Body=self.package.data,
                                                    ContentType="application/zip")

    def _delete_package(self, c: Change) -> None:
        _ignore_not_found(self.clients.get("s3", c.region).delete_object, Bucket=c.target, Key=c.param("key"))

    def _delete_bucket(self, c: Change) -> None:
        _ignore_not_found(self.clients.get("s3", c.region).delete_bucket, Bucket=c.target)

    # --- Elastic IP ---

    def _create_eip(self, c: Change) -> None:
        ec2 = self.clients.ec2(c.region)
        reply = ec2.allocate_address(Domain="vpc", TagSpecifications=[
            {"ResourceType": "elastic-ip", "Tags": self._tags(c, naming.ROLE_EIP)}])
        self._set("eip-allocation", c.site, reply["AllocationId"])
        self._set("eip-ip", c.site, reply["PublicIp"])

    def _update_eip_association(self, c: Change) -> None:
        ec2, instance = self.clients.ec2(c.region), self.resolve(c.param("instance"))
        self._wait_state(c.region, [instance], {"running"})
        ec2.associate_address(AllocationId=self.resolve(c.param("allocation")), InstanceId=instance,
                              AllowReassociation=True)

    def _delete_eip(self, c: Change) -> None:
        ec2 = self.clients.ec2(c.region)
        if c.param("association"):
            _ignore_not_found(ec2.disassociate_address, AssociationId=c.param("association"))
        _ignore_not_found(ec2.release_address, AllocationId=c.target)

    # --- security group ---

    def _create_security_group(self, c: Change) -> None:
        ec2 = self.clients.ec2(c.region)
        try:
            reply = ec2.create_security_group(
                GroupName=c.target, VpcId=c.param("vpc"),
                Description=f"linker gateway of link {self.link}, site {c.site}: tunnel port from peers only",
                TagSpecifications=[{"ResourceType": "security-group",
                                    "Tags": self._tags(c, naming.ROLE_SECURITY_GROUP)}])
            group = reply["GroupId"]
        except ClientError as exc:
            if error_code(exc) != "InvalidGroup.Duplicate":
                raise
            group = self._adopt_group(c)
        self._set("security-group", c.site, group)

    def _adopt_group(self, c: Change) -> str:
        found = self.clients.ec2(c.region).describe_security_groups(Filters=[
            {"Name": "group-name", "Values": [c.target]}, {"Name": "vpc-id", "Values": [c.param("vpc")]},
            {"Name": f"tag:{naming.TAG_LINK}", "Values": [self.link]}])["SecurityGroups"]
        if not found:
            raise CloudError(f"{c.region}: a security group named {c.target} exists that is not the link's",
                             fix="delete or rename it")
        return str(found[0]["GroupId"])

    def _permissions(self, rules: tuple) -> list[dict[str, Any]]:
        out = []
        for proto, low, high, source in rules:
            source = self.resolve(source)
            cidr = source if "/" in source else f"{source}/32"
            perm: dict[str, Any] = {"IpProtocol": proto, "IpRanges": [{"CidrIp": cidr}]}
            if low is not None:
                perm.update(FromPort=low, ToPort=high)
            out.append(perm)
        return out

    def _update_security_group_ingress(self, c: Change) -> None:
        ec2, group = self.clients.ec2(c.region), self.resolve(c.param("group"))
        perms = self._permissions(c.param("rules"))
        try:
            ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=perms)
        except ClientError as exc:
            if error_code(exc) != "InvalidPermission.Duplicate":
                raise
            for perm in perms:  # some were added by a run that died: add the rest one by one
                try:
                    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[perm])
                except ClientError as again:
                    if error_code(again) != "InvalidPermission.Duplicate":
                        raise

    def _delete_security_group_ingress(self, c: Change) -> None:
        ec2 = self.clients.ec2(c.region)
        _ignore_not_found(ec2.revoke_security_group_ingress, GroupId=self.resolve(c.param("group")),
                          IpPermissions=self._permissions(c.param("rules")))

    def _delete_security_group(self, c: Change) -> None:
        ec2 = self.clients.ec2(c.region)
        deadline = time.monotonic() + self.timeout
        while True:  # the terminated instance's ENI can take a while to go away
            try:
                _ignore_not_found(ec2.delete_security_group, GroupId=c.target)
                return
            except ClientError as exc:
                if error_code(exc) != "DependencyViolation" or time.monotonic() > deadline:
                    raise
                time.sleep(self.poll)

    # --- IAM ---

    def _create_iam_role(self, c: Change) -> None:
        _ignore_exists(self.clients.iam().create_role, RoleName=c.target, Path=naming.IAM_PATH,
                       AssumeRolePolicyDocument=c.param("document"), Tags=self._tags(c, naming.ROLE_IAM_ROLE),
                       Description=f"linker gateway of link {self.link}, site {c.site}")

    def _update_iam_role_policy(self, c: Change) -> None:
        self.clients.iam().put_role_policy(RoleName=c.target, PolicyName=naming.INLINE_POLICY,
                                           PolicyDocument=c.param("policy"))

    def _update_iam_attach_policy(self, c: Change) -> None:
        self.clients.iam().attach_role_policy(RoleName=c.target, PolicyArn=c.param("arn"))

    def _create_instance_profile(self, c: Change) -> None:
        _ignore_exists(self.clients.iam().create_instance_profile, InstanceProfileName=c.target,
                       Path=naming.IAM_PATH, Tags=self._tags(c, naming.ROLE_INSTANCE_PROFILE))

    def _update_instance_profile_role(self, c: Change) -> None:
        try:
            self.clients.iam().add_role_to_instance_profile(InstanceProfileName=c.target, RoleName=c.param("role"))
        except ClientError as exc:
            if error_code(exc) not in ("LimitExceeded", "EntityAlreadyExists"):
                raise

    def _delete_instance_profile_role(self, c: Change) -> None:
        _ignore_not_found(self.clients.iam().remove_role_from_instance_profile, InstanceProfileName=c.target,
                          RoleName=c.param("role"))

    def _delete_instance_profile(self, c: Change) -> None:
        _ignore_not_found(self.clients.iam().delete_instance_profile, InstanceProfileName=c.target)

    def _delete_iam_attach_policy(self, c: Change) -> None:
        _ignore_not_found(self.clients.iam().detach_role_policy, RoleName=c.target, PolicyArn=c.param("arn"))

    def _delete_iam_role_policy(self, c: Change) -> None:
        _ignore_not_found(self.clients.iam().delete_role_policy, RoleName=c.target, PolicyName=naming.INLINE_POLICY)

    def _delete_iam_role(self, c: Change) -> None:
        _ignore_not_found(self.clients.iam().delete_role, RoleName=c.target)

    # --- instance ---

    def _create_instance(self, c: Change) -> None:
        ec2 = self.clients.ec2(c.region)
        tags = self._tags(c, naming.ROLE_INSTANCE, {naming.TAG_CONFIG: c.param("config"), "Name": c.target})
        kwargs = dict(
            ImageId=c.param("ami"), InstanceType=c.param("instance_type"), MinCount=1, MaxCount=1,
            SubnetId=c.param("subnet"), SecurityGroupIds=[self.resolve(c.param("group"))],
            IamInstanceProfile={"Name": c.param("profile")}, UserData=c.param("user_data"),
            MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
            ClientToken=self._token(c.site, "instance", c.param("config")),
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags},
                               {"ResourceType": "network-interface", "Tags": self._tags(c, naming.ROLE_INSTANCE)}])
        deadline = time.monotonic() + min(self.timeout, 120.0)
        while True:
            try:
                instance = ec2.run_instances(**kwargs)["Instances"][0]
                break
            except ClientError as exc:
                # a new instance profile takes a few seconds to be usable by EC2 (IAM is eventually consistent)
                propagating = error_code(exc) == "InvalidParameterValue" and "profile" in str(exc).lower()
                if not propagating or time.monotonic() > deadline:
                    raise
                time.sleep(self.poll)
        self._set("instance", c.site, instance["InstanceId"])
        self._set("eni", c.site, instance["NetworkInterfaces"][0]["NetworkInterfaceId"])
        ec2.modify_instance_attribute(InstanceId=instance["InstanceId"], SourceDestCheck={"Value": False})

    def _update_source_dest_check(self, c: Change) -> None:
        self.clients.ec2(c.region).modify_instance_attribute(InstanceId=c.target, SourceDestCheck={"Value": False})

    def _update_metadata_options(self, c: Change) -> None:
        self.clients.ec2(c.region).modify_instance_metadata_options(InstanceId=c.target, HttpTokens="required",
                                                                    HttpEndpoint="enabled")

    def _delete_instance(self, c: Change) -> None:
        _ignore_not_found(self.clients.ec2(c.region).terminate_instances, InstanceIds=[c.target])

    def _delete_instance_terminated(self, c: Change) -> None:
        self._wait_state(c.region, list(c.param("instances")), {"terminated"})

    def _wait_state(self, region: str, instances: list[str], states: set[str]) -> None:
        ec2, deadline = self.clients.ec2(region), time.monotonic() + self.timeout
        while True:
            try:
                found = [i for r in ec2.describe_instances(InstanceIds=instances)["Reservations"]
                         for i in r["Instances"]]
            except ClientError as exc:
                if not is_not_found(exc):
                    raise
                found = []  # gone altogether counts as terminated; a new instance may not be visible yet
                if "terminated" in states:
                    return
            if found and all(i["State"]["Name"] in states for i in found):
                return
            if time.monotonic() > deadline:
                raise CloudError(f"{region}: instances {', '.join(instances)} did not reach {'/'.join(states)} "
                                 f"within {self.timeout:.0f} s")
            time.sleep(self.poll)

    # --- routes ---

    def _create_route(self, c: Change) -> None:
        ec2 = self.clients.ec2(c.region)
        # the tag first: a run that dies between the two leaves a record, never an unrecorded route
        ec2.create_tags(Resources=[c.param("table")], Tags=[{"Key": c.param("tag"), "Value": c.site}])
        try:
            ec2.create_route(RouteTableId=c.param("table"), DestinationCidrBlock=c.param("cidr"),
                             NetworkInterfaceId=self.resolve(c.param("eni")))
        except ClientError as exc:
            if error_code(exc) != "RouteAlreadyExists":
                raise
            self._update_route(c)

    def _update_route(self, c: Change) -> None:
        ec2 = self.clients.ec2(c.region)
        ec2.create_tags(Resources=[c.param("table")], Tags=[{"Key": c.param("tag"), "Value": c.site}])
        ec2.replace_route(RouteTableId=c.param("table"), DestinationCidrBlock=c.param("cidr"),
                          NetworkInterfaceId=self.resolve(c.param("eni")))

    def _delete_route(self, c: Change) -> None:
        ec2 = self.clients.ec2(c.region)
        _ignore_not_found(ec2.delete_route, RouteTableId=c.param("table"), DestinationCidrBlock=c.param("cidr"))
        _ignore_not_found(ec2.delete_tags, Resources=[c.param("table")], Tags=[{"Key": c.param("tag")}])


def _ignore_not_found(fn: Callable[..., Any], **kwargs: Any) -> None:
    try:
        fn(**kwargs)
    except ClientError as exc:
        if not is_not_found(exc):
            raise


def _ignore_exists(fn: Callable[..., Any], **kwargs: Any) -> None:
    try:
        fn(**kwargs)
    except ClientError as exc:
        if error_code(exc) != "EntityAlreadyExists":
            raise
