"""S3 changes: the site's bucket and the controller's wheel in it, which the gateway installs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from linker import naming
from linker.control.apply.calls import ignore_not_found
from linker.control.aws import error_code
from linker.control.changes import Action, Change, Kind

if TYPE_CHECKING:
    from linker.control.apply.run import Applier, Handler


def create_bucket(run: Applier, c: Change) -> None:
    s3 = run.clients.get("s3", c.region)
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
    update_bucket_tags(run, c)  # last: tags present means the bucket is fully set up


def update_bucket_tags(run: Applier, c: Change) -> None:
    run.clients.get("s3", c.region).put_bucket_tagging(Bucket=c.target, Tagging={
        "TagSet": run.tags(c, naming.ROLE_BUCKET)})


def create_package(run: Applier, c: Change) -> None:
    if run.package is None or run.package.key != c.param("key"):
        raise RuntimeError("the applier was not given the package the plan uploads")  # a bug
    run.clients.get("s3", c.region).put_object(Bucket=c.target, Key=run.package.key, Body=run.package.data,
                                               ContentType="application/zip")


def delete_package(run: Applier, c: Change) -> None:
    ignore_not_found(run.clients.get("s3", c.region).delete_object, Bucket=c.target, Key=c.param("key"))


def delete_bucket(run: Applier, c: Change) -> None:
    ignore_not_found(run.clients.get("s3", c.region).delete_bucket, Bucket=c.target)


HANDLERS: dict[tuple[Action, Kind], Handler] = {
    (Action.CREATE, Kind.BUCKET): create_bucket,
    (Action.UPDATE, Kind.BUCKET_TAGS): update_bucket_tags,
    (Action.CREATE, Kind.PACKAGE): create_package,
    (Action.DELETE, Kind.PACKAGE): delete_package,
    (Action.DELETE, Kind.BUCKET): delete_bucket,
}
