"""EC2 changes: the Elastic IP, the security group and its rules, the instance, the routes to the peers."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from linker import naming
from linker.control.apply.calls import ignore_not_found, settled
from linker.control.aws import error_code, is_not_found
from linker.control.changes import Action, Change, Kind
from linker.control.cost import burstable
from linker.errors import CloudError

if TYPE_CHECKING:
    from linker.control.apply.run import Applier, Handler


# --- Elastic IP ---
def create_eip(run: Applier, c: Change) -> None:
    ec2 = run.clients.ec2(c.region)
    reply = ec2.allocate_address(Domain="vpc", TagSpecifications=[
        {"ResourceType": "elastic-ip", "Tags": run.tags(c, naming.ROLE_EIP)}])
    key = c.param("ref", c.site)  # a site's second gateway (--ha) has references of its own
    run.set_ref("eip-allocation", key, reply["AllocationId"])
    run.set_ref("eip-ip", key, reply["PublicIp"])


def update_eip_association(run: Applier, c: Change) -> None:
    ec2, instance = run.clients.ec2(c.region), run.resolve(c.param("instance"))
    _wait_state(run, c.region, [instance], {"running"})
    settled(ec2.associate_address, run.settle_delays, AllocationId=run.resolve(c.param("allocation")),
            InstanceId=instance, AllowReassociation=True)


def delete_eip(run: Applier, c: Change) -> None:
    ec2 = run.clients.ec2(c.region)
    if c.param("association"):
        ignore_not_found(ec2.disassociate_address, AssociationId=c.param("association"))
    ignore_not_found(ec2.release_address, AllocationId=c.target)


# --- security group ---
def create_security_group(run: Applier, c: Change) -> None:
    ec2 = run.clients.ec2(c.region)
    try:
        reply = ec2.create_security_group(
            GroupName=c.target, VpcId=c.param("vpc"),
            Description=f"linker gateway of link {run.link}, site {c.site}: tunnel port from peers only",
            TagSpecifications=[{"ResourceType": "security-group",
                                "Tags": run.tags(c, naming.ROLE_SECURITY_GROUP)}])
        group = reply["GroupId"]
    except ClientError as exc:
        if error_code(exc) != "InvalidGroup.Duplicate":
            raise
        group = _adopt_group(run, c)
    run.set_ref("security-group", c.site, group)


def _adopt_group(run: Applier, c: Change) -> str:
    found = run.clients.ec2(c.region).describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [c.target]}, {"Name": "vpc-id", "Values": [c.param("vpc")]},
        {"Name": f"tag:{naming.TAG_LINK}", "Values": [run.link]}])["SecurityGroups"]
    if not found:
        raise CloudError(f"{c.region}: a security group named {c.target} exists that is not the link's",
                         fix="delete or rename it")
    return str(found[0]["GroupId"])


def _permissions(run: Applier, rules: tuple) -> list[dict[str, Any]]:
    out = []
    for proto, low, high, source in rules:
        source = run.resolve(source)
        cidr = source if "/" in source else f"{source}/32"
        perm: dict[str, Any] = {"IpProtocol": proto, "IpRanges": [{"CidrIp": cidr}]}
        if low is not None:
            perm.update(FromPort=low, ToPort=high)
        out.append(perm)
    return out


def _authorize(run: Applier, c: Change, authorize: Any) -> None:
    group, perms = run.resolve(c.param("group")), _permissions(run, c.param("rules"))
    try:
        settled(authorize, run.settle_delays, GroupId=group, IpPermissions=perms)
    except ClientError as exc:
        if error_code(exc) != "InvalidPermission.Duplicate":
            raise
        for perm in perms:  # some were added by a run that died: add the rest one by one
            try:
                authorize(GroupId=group, IpPermissions=[perm])
            except ClientError as again:
                if error_code(again) != "InvalidPermission.Duplicate":
                    raise


def update_security_group_ingress(run: Applier, c: Change) -> None:
    _authorize(run, c, run.clients.ec2(c.region).authorize_security_group_ingress)


def update_security_group_egress(run: Applier, c: Change) -> None:
    _authorize(run, c, run.clients.ec2(c.region).authorize_security_group_egress)


def delete_security_group_ingress(run: Applier, c: Change) -> None:
    ec2 = run.clients.ec2(c.region)
    ignore_not_found(ec2.revoke_security_group_ingress, GroupId=run.resolve(c.param("group")),
                     IpPermissions=_permissions(run, c.param("rules")))


def delete_security_group_egress(run: Applier, c: Change) -> None:
    ec2 = run.clients.ec2(c.region)
    ignore_not_found(ec2.revoke_security_group_egress, GroupId=run.resolve(c.param("group")),
                     IpPermissions=_permissions(run, c.param("rules")))


def delete_security_group(run: Applier, c: Change) -> None:
    ec2 = run.clients.ec2(c.region)
    deadline = time.monotonic() + run.timeout
    while True:  # the terminated instance's ENI can take a while to go away
        try:
            ignore_not_found(ec2.delete_security_group, GroupId=c.target)
            return
        except ClientError as exc:
            if error_code(exc) != "DependencyViolation" or time.monotonic() > deadline:
                raise
            time.sleep(run.poll)


# --- instance ---
def _encrypted_root(ec2: Any, ami: str) -> dict[str, Any]:
    """The image's own root device, encrypted (the account's default EBS key) and gp3, as terraform/ does; its size
    and snapshot as the image has them."""
    image = ec2.describe_images(ImageIds=[ami])["Images"][0]
    device = image.get("RootDeviceName", "/dev/xvda")
    ebs = next((m.get("Ebs", {}) for m in image.get("BlockDeviceMappings", []) if m.get("DeviceName") == device), {})
    root = {"Encrypted": True, "VolumeType": "gp3", "DeleteOnTermination": True,
            "VolumeSize": int(ebs.get("VolumeSize") or 8)}
    return {"DeviceName": device, "Ebs": root}


def create_instance(run: Applier, c: Change) -> None:
    ec2 = run.clients.ec2(c.region)
    tags = run.tags(c, naming.ROLE_INSTANCE, {naming.TAG_CONFIG: c.param("config"), **dict(c.param("pin", ())),
                                              "Name": c.target})
    kwargs = dict(
        BlockDeviceMappings=[_encrypted_root(ec2, c.param("ami"))],
        ImageId=c.param("ami"), InstanceType=c.param("instance_type"), MinCount=1, MaxCount=1,
        # a public address of its own from launch: the bootstrap needs egress (S3, the AWS APIs) before the EIP,
        # which moves to it only once it is ready (make before break), whether or not the subnet assigns one
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": c.param("subnet"), "AssociatePublicIpAddress": True,
                            "Groups": [run.resolve(c.param("group"))], "DeleteOnTermination": True}],
        IamInstanceProfile={"Name": c.param("profile")}, UserData=c.param("user_data"),
        MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
        ClientToken=run.token(c.param("ref", c.site), "instance", c.param("config")),
        # burstable types: standard credits, so a CPU-bound data plane is throttled, never billed for surplus
        **({"CreditSpecification": {"CpuCredits": "standard"}} if burstable(c.param("instance_type")) else {}),
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags},
                           {"ResourceType": "network-interface", "Tags": run.tags(c, naming.ROLE_INSTANCE)},
                           {"ResourceType": "volume", "Tags": run.tags(c, naming.ROLE_INSTANCE)}])
    deadline = time.monotonic() + min(run.timeout, 120.0)
    while True:
        try:
            instance = ec2.run_instances(**kwargs)["Instances"][0]
            break
        except ClientError as exc:
            # a new instance profile takes a few seconds to be usable by EC2 (IAM is eventually consistent)
            propagating = error_code(exc) == "InvalidParameterValue" and "profile" in str(exc).lower()
            if not propagating or time.monotonic() > deadline:
                raise
            time.sleep(run.poll)
    key = c.param("ref", c.site)
    run.set_ref("instance", key, instance["InstanceId"])
    run.set_ref("eni", key, instance["NetworkInterfaces"][0]["NetworkInterfaceId"])
    if instance.get("PrivateIpAddress"):  # its tunnel address in a site with two gateways (docs/HA.md)
        run.set_ref("tunnel", key, instance["PrivateIpAddress"])
    settled(ec2.modify_instance_attribute, run.settle_delays, InstanceId=instance["InstanceId"],
            SourceDestCheck={"Value": False})


def update_source_dest_check(run: Applier, c: Change) -> None:
    settled(run.clients.ec2(c.region).modify_instance_attribute, run.settle_delays, InstanceId=c.target,
            SourceDestCheck={"Value": False})


def update_metadata_options(run: Applier, c: Change) -> None:
    run.clients.ec2(c.region).modify_instance_metadata_options(InstanceId=c.target, HttpTokens="required",
                                                                HttpEndpoint="enabled")


def delete_instance(run: Applier, c: Change) -> None:
    ignore_not_found(run.clients.ec2(c.region).terminate_instances, InstanceIds=[c.target])


def delete_instance_terminated(run: Applier, c: Change) -> None:
    _wait_state(run, c.region, list(c.param("instances")), {"terminated"})


def _wait_state(run: Applier, region: str, instances: list[str], states: set[str]) -> None:
    ec2, deadline = run.clients.ec2(region), time.monotonic() + run.timeout
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
        lost = [i for i in found if "running" in states and i["State"]["Name"] in ("shutting-down", "terminated")]
        if lost:  # it will never run: say why now, not after the timeout (a missing KMS grant, a capacity error)
            why = "; ".join(f"{i['InstanceId']}: {i.get('StateReason', {}).get('Message') or i['State']['Name']}"
                            for i in lost)
            raise CloudError(f"{region}: the gateway instance stopped while starting ({why})",
                             fix="fix the cause named (e.g. grant EC2 use of the EBS encryption key), then run "
                                 "`linker up` again: it replaces the instance")
        if time.monotonic() > deadline:
            raise CloudError(f"{region}: instances {', '.join(instances)} did not reach {'/'.join(states)} "
                             f"within {run.timeout:.0f} s")
        time.sleep(run.poll)


# --- routes ---
def create_route(run: Applier, c: Change) -> None:
    ec2 = run.clients.ec2(c.region)
    # the tag first: a run that dies between the two leaves a record, never an unrecorded route
    settled(ec2.create_tags, run.settle_delays, Resources=[c.param("table")],
            Tags=[{"Key": c.param("tag"), "Value": c.site}])
    try:
        settled(ec2.create_route, run.settle_delays, RouteTableId=c.param("table"),
                DestinationCidrBlock=c.param("cidr"), NetworkInterfaceId=run.resolve(c.param("eni")))
    except ClientError as exc:
        if error_code(exc) != "RouteAlreadyExists":
            raise
        update_route(run, c)


def update_route(run: Applier, c: Change) -> None:
    ec2 = run.clients.ec2(c.region)
    settled(ec2.create_tags, run.settle_delays, Resources=[c.param("table")],
            Tags=[{"Key": c.param("tag"), "Value": c.site}])
    settled(ec2.replace_route, run.settle_delays, RouteTableId=c.param("table"), DestinationCidrBlock=c.param("cidr"),
            NetworkInterfaceId=run.resolve(c.param("eni")))


def delete_route(run: Applier, c: Change) -> None:
    ec2 = run.clients.ec2(c.region)
    ignore_not_found(ec2.delete_route, RouteTableId=c.param("table"), DestinationCidrBlock=c.param("cidr"))
    ignore_not_found(ec2.delete_tags, Resources=[c.param("table")], Tags=[{"Key": c.param("tag")}])


def update_route_table_tag(run: Applier, c: Change) -> None:
    settled(run.clients.ec2(c.region).create_tags, run.settle_delays, Resources=[c.target],
            Tags=[{"Key": c.param("tag"), "Value": c.site}])


def delete_route_table_tag(run: Applier, c: Change) -> None:
    ignore_not_found(run.clients.ec2(c.region).delete_tags, Resources=[c.target], Tags=[{"Key": c.param("tag")}])


HANDLERS: dict[tuple[Action, Kind], Handler] = {
    (Action.CREATE, Kind.EIP): create_eip,
    (Action.UPDATE, Kind.EIP_ASSOCIATION): update_eip_association,
    (Action.DELETE, Kind.EIP): delete_eip,
    (Action.CREATE, Kind.SECURITY_GROUP): create_security_group,
    (Action.UPDATE, Kind.SECURITY_GROUP_INGRESS): update_security_group_ingress,
    (Action.DELETE, Kind.SECURITY_GROUP_INGRESS): delete_security_group_ingress,
    (Action.UPDATE, Kind.SECURITY_GROUP_EGRESS): update_security_group_egress,
    (Action.DELETE, Kind.SECURITY_GROUP_EGRESS): delete_security_group_egress,
    (Action.DELETE, Kind.SECURITY_GROUP): delete_security_group,
    (Action.CREATE, Kind.INSTANCE): create_instance,
    (Action.UPDATE, Kind.SOURCE_DEST_CHECK): update_source_dest_check,
    (Action.UPDATE, Kind.METADATA_OPTIONS): update_metadata_options,
    (Action.DELETE, Kind.INSTANCE): delete_instance,
    (Action.DELETE, Kind.INSTANCE_TERMINATED): delete_instance_terminated,
    (Action.CREATE, Kind.ROUTE): create_route,
    (Action.UPDATE, Kind.ROUTE): update_route,
    (Action.DELETE, Kind.ROUTE): delete_route,
    (Action.UPDATE, Kind.ROUTE_TABLE_TAG): update_route_table_tag,
    (Action.DELETE, Kind.ROUTE_TABLE_TAG): delete_route_table_tag,
}
